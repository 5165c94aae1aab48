"""`node(id:)` and `nodes(ids:)` compiled: each ID's object built by its type's branch of a CASE.

The statement's text does not depend on the IDs, so one plan serves every request: `node` takes
the ID's type and key as parameters, `nodes` a JSON array of them that the database reads as rows.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from graphql import FieldNode
from graphql.execution.values import VariableValues

from gateway.schema.node import NODE_TYPES
from gateway.schema.refetch import node_id, node_ids

if TYPE_CHECKING:
    from gateway.execution.fastpath.compiler import Compiler, Getter

__all__ = ["node_by_id", "nodes_by_ids"]

TABLES = {
    "User": "users",
    "Group": "club_groups",
    "ShootingSession": "shooting_sessions",
    "Shot": "shots",
    "Activity": "activities",
}


def _node(c: Compiler, kind: str, pk: str, nodes: list[FieldNode], keys: str) -> str:
    """The JSON of the object of type `kind` and key `pk` (SQL expressions), or NULL.

    `keys` lists the keys of every object the statement builds: the rows the checks of the
    statement read (an activity's kind, see `_activity_kind` in fastpath/club.py).
    """
    branches = []
    for type_name in NODE_TYPES:
        a = c.alias()
        c.rows = f"FROM {TABLES[type_name]} {a} WHERE {a}.id IN ({keys.format(type_name=type_name)})"
        body = c.object(type_name, a, nodes)
        row = f"SELECT {body} FROM {TABLES[type_name]} {a} WHERE {a}.id = {pk}"
        branches.append(f"WHEN {c.sql.literal(type_name)} THEN {c.sql.nested(row)}")
    # Through `nested` again: MariaDB's CASE forgets that its branches are JSON.
    return c.sql.nested(f"SELECT CASE {kind} {' '.join(branches)} END")


def node_by_id(c: Compiler, arguments: Getter, nodes: list[FieldNode]) -> str:
    def key(variables: VariableValues) -> tuple[str, int] | None:
        return node_id(arguments(variables)["id"])  # BAD_USER_INPUT for a malformed ID: interpreted

    def kind(variables: VariableValues) -> str:
        found = key(variables)
        return "" if found is None else found[0]

    def pk(variables: VariableValues) -> int:
        found = key(variables)
        return 0 if found is None else found[1]

    key_marker = c.param(pk)
    return _node(c, c.param(kind), key_marker, nodes, key_marker)


def nodes_by_ids(c: Compiler, arguments: Getter, nodes: list[FieldNode]) -> str:
    def keys(variables: VariableValues) -> str:
        # An ID naming nothing is ["", 0]: no branch matches it, its element is null.
        found: list[Any] = [k or ("", 0) for k in node_ids(arguments(variables)["ids"])]
        return json.dumps(found)

    p, q = c.alias(), c.alias()
    positions = c.sql.positions(c.param(keys))
    of_type = f"SELECT {q}.pk FROM {positions} {q} WHERE {q}.kind = '{{type_name}}'"
    element = _node(c, f"{p}.kind", f"{p}.pk", nodes, of_type)
    source = f"FROM {positions} {p}"
    return c.sql.array(element, p, source, f"{p}.pos", None, correlated=False)
