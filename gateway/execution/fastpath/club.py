"""The club's schema as SQL: which statement each field and root field is, for the compiler
(`fastpath/compiler.py`); `compile_operation` compiles a query's root fields with it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from graphql import FieldNode, FragmentDefinitionNode, GraphQLSchema, SelectionSetNode, get_named_type
from graphql.execution.values import VariableValues

from gateway.datasources.records import SessionFilter
from gateway.datasources.sql.json_sql import JsonSql
from gateway.execution.fastpath.compiler import (
    Build,
    Compiler,
    Getter,
    NotCompilable,
    PagedRows,
    RootStatement,
    Rows,
    once_per_request,
)
from gateway.execution.fastpath.refetch import node_by_id, nodes_by_ids
from gateway.execution.policy import Mark
from gateway.schema.ids import decode_id
from gateway.schema.inputs import ShootingSessionFilter, ShootingSessionOrder, id_of
from gateway.schema.queries import ACTIVITIES, GROUPS, SESSIONS, USERS, session_filter
from gateway.schema.types import MEMBERS, SESSIONS_NEWEST_FIRST, ActivityKind

__all__ = ["FIELDS", "compile_operation"]

_SESSIONS_TABLE = "shooting_sessions"


def _column(column: str) -> Build:
    return lambda c, a, nodes: f"{a}.{column}"


def _timestamp(column: str) -> Build:
    return lambda c, a, nodes: c.sql.timestamp(f"{a}.{column}")


def _id(type_name: str) -> Build:
    return lambda c, a, nodes: c.id(type_name, f"{a}.id")


def _to_one(type_name: str, table: str, column: str) -> Build:
    return lambda c, a, nodes: c.sql.nested(c.row(type_name, table, f"{{a}}.id = {a}.{column}", nodes))


def _activity_kind(c: Compiler, a: str, nodes: list[FieldNode]) -> str:
    # An activity kind this version does not know (written by a newer one) is an error in the
    # interpreted path: the statement checks the page's kinds, and the error comes from there.
    known = ", ".join(c.sql.literal(kind.value) for kind in ActivityKind)
    c.checks.append(f"NOT EXISTS (SELECT 1 FROM (SELECT {a}.kind {c.rows}) k WHERE k.kind NOT IN ({known}))")
    return f"{a}.kind"


def _average(c: Compiler, a: str, nodes: list[FieldNode]) -> str:
    return (
        f"CASE WHEN {a}.shot_count = 0 THEN NULL"
        f" ELSE {c.sql.hundredths(f'{a}.total_tenths', f'{a}.shot_count')} END"
    )


_SESSIONS_OF_OWNER = PagedRows(
    SESSIONS_NEWEST_FIRST, Rows(_SESSIONS_TABLE, "", (("started_at", "DESC"), ("id", "DESC")))
)
_MEMBERS = PagedRows(
    MEMBERS, Rows("users", " JOIN memberships {m} ON {m}.user_id = {a}.id", (("id", "ASC"),))
)
_GROUPS_OF_USER = Rows("club_groups", " JOIN memberships {m} ON {m}.group_id = {a}.id", (("id", "ASC"),))
_SHOTS = Rows("shots", "", (("sequence", "ASC"),))


def _sessions_of(owner: str, parent: str) -> Build:
    def build(c: Compiler, a: str, nodes: list[FieldNode]) -> str:
        return c.connection(
            "ShootingSession",
            _SESSIONS_OF_OWNER,
            [f"{{a}}.{owner} = {a}.id"],
            c.arguments(parent, nodes),
            nodes,
            "ShootingSessionConnection",
        )

    return build


def _members(c: Compiler, a: str, nodes: list[FieldNode]) -> str:
    return c.connection(
        "User", _MEMBERS, [f"{{m}}.group_id = {a}.id"], c.arguments("Group", nodes), nodes, "UserConnection"
    )


def _groups_of_user(c: Compiler, a: str, nodes: list[FieldNode]) -> str:
    return c.plain_list("Group", _GROUPS_OF_USER, [f"{{m}}.user_id = {a}.id"], nodes)


def _shots(c: Compiler, a: str, nodes: list[FieldNode]) -> str:
    return c.plain_list("Shot", _SHOTS, [f"{{a}}.session_id = {a}.id"], nodes)


FIELDS: dict[tuple[str, str], Build] = {
    ("User", "id"): _id("User"),
    ("User", "email"): _column("email"),
    ("User", "displayName"): _column("display_name"),
    ("User", "createdAt"): _timestamp("created_at"),
    ("User", "groups"): _groups_of_user,
    ("User", "shootingSessions"): _sessions_of("user_id", "User"),
    ("Group", "id"): _id("Group"),
    ("Group", "name"): _column("name"),
    ("Group", "description"): _column("description"),
    ("Group", "createdAt"): _timestamp("created_at"),
    ("Group", "members"): _members,
    ("Group", "shootingSessions"): _sessions_of("group_id", "Group"),
    ("ShootingSession", "id"): _id("ShootingSession"),
    ("ShootingSession", "startedAt"): _timestamp("started_at"),
    ("ShootingSession", "location"): _column("location"),
    ("ShootingSession", "discipline"): _column("discipline"),
    ("ShootingSession", "distanceMeters"): _column("distance_meters"),
    ("ShootingSession", "notes"): _column("notes"),
    ("ShootingSession", "shotCount"): _column("shot_count"),
    ("ShootingSession", "totalScore"): lambda c, a, nodes: c.sql.tenths(f"{a}.total_tenths"),
    ("ShootingSession", "averageScore"): _average,
    ("ShootingSession", "user"): _to_one("User", "users", "user_id"),
    ("ShootingSession", "group"): _to_one("Group", "club_groups", "group_id"),
    ("ShootingSession", "shots"): _shots,
    ("Shot", "id"): _id("Shot"),
    ("Shot", "sequence"): _column("sequence"),
    ("Shot", "score"): lambda c, a, nodes: c.sql.tenths(f"{a}.score_tenths"),
    ("Shot", "x"): lambda c, a, nodes: c.sql.real(f"{a}.x"),
    ("Shot", "y"): lambda c, a, nodes: c.sql.real(f"{a}.y"),
    ("Activity", "id"): _id("Activity"),
    ("Activity", "kind"): _activity_kind,
    ("Activity", "createdAt"): _timestamp("created_at"),
    ("Activity", "user"): _to_one("User", "users", "user_id"),
    ("Activity", "group"): _to_one("Group", "club_groups", "group_id"),
    ("Activity", "shootingSession"): _to_one("ShootingSession", _SESSIONS_TABLE, "session_id"),
}


# -- root fields ------------------------------------------------------------------------------

_BY_ID = {
    "user": ("User", "users"),
    "group": ("Group", "club_groups"),
    "shootingSession": ("ShootingSession", _SESSIONS_TABLE),
}

_ROOT_LISTS = {
    "users": ("User", PagedRows(USERS, Rows("users", "", (("id", "ASC"),)))),
    "groups": ("Group", PagedRows(GROUPS, Rows("club_groups", "", (("id", "ASC"),)))),
    "activities": ("Activity", PagedRows(ACTIVITIES, Rows("activities", "", (("id", "DESC"),)))),
}


def _session_pages() -> dict[ShootingSessionOrder, PagedRows]:
    pages = {}
    for order in ShootingSessionOrder:
        direction = "DESC" if order is ShootingSessionOrder.STARTED_AT_DESC else "ASC"
        pages[order] = PagedRows(
            SESSIONS[order], Rows(_SESSIONS_TABLE, "", (("started_at", direction), ("id", direction)))
        )
    return pages


_SESSION_PAGES = _session_pages()


def _root(c: Compiler, key: str, nodes: list[FieldNode]) -> RootStatement:
    name = nodes[0].name.value
    if name == "__typename":
        return RootStatement(key, None, (), b'"Query"')
    if name not in _BY_ID and name not in _ROOT_LISTS and name not in ("shootingSessions", "node", "nodes"):
        raise NotCompilable(f"Query.{name}")  # introspection, say
    if name in _BY_ID:
        type_name, table = _BY_ID[name]
        arguments = c.arguments("Query", nodes, shared=False)  # the key is their one reader

        def pk(variables: VariableValues) -> int | None:
            return decode_id(arguments(variables)["id"], type_name)

        body = c.row(type_name, table, f"{{a}}.id = {c.param(pk)}", nodes)
        return c.finish(key, f"SELECT ({body}) AS data")
    arguments = c.arguments("Query", nodes)
    if name == "node":
        return c.finish(key, f"SELECT {node_by_id(c, arguments, nodes)} AS data")
    if name == "nodes":
        return c.finish(key, f"SELECT {nodes_by_ids(c, arguments, nodes)} AS data")
    if name in _ROOT_LISTS:
        node_type, page = _ROOT_LISTS[name]
        conditions = _activity_conditions(c, arguments) if name == "activities" else []
    elif name == "shootingSessions":
        node_type, page = "ShootingSession", _SESSION_PAGES[arguments(c.variables)["orderBy"]]
        conditions = _session_conditions(c, arguments)
    connection_type = get_named_type(c.field("Query", name).type).name
    body = c.connection(node_type, page, conditions, arguments, nodes, connection_type, correlated=False)
    return c.finish(key, f"SELECT {body} AS data")


def _activity_conditions(c: Compiler, arguments: Getter) -> list[str]:
    conditions = []
    for argument, column, type_name in (("userId", "user_id", "User"), ("groupId", "group_id", "Group")):
        if arguments(c.variables).get(argument) is not None:

            def get(variables: VariableValues, argument: str = argument, type_name: str = type_name) -> int:
                return id_of(argument, arguments(variables)[argument], type_name)

            conditions.append(f"{{a}}.{column} = {c.param(get)}")
    return conditions


def _filter(arguments: Getter, variables: VariableValues) -> SessionFilter:
    given = arguments(variables).get("filter")
    if given is None:
        return session_filter(None)
    return session_filter(
        ShootingSessionFilter(
            user_id=given.get("userId"),
            group_id=given.get("groupId"),
            discipline=given.get("discipline"),
            started_after=given.get("startedAfter"),
            started_before=given.get("startedBefore"),
        )
    )


def _session_conditions(c: Compiler, arguments: Getter) -> list[str]:
    checked = once_per_request(lambda variables: _filter(arguments, variables))
    given = checked(c.variables)
    conditions = []
    for attribute, column, op in (
        ("user_id", "user_id", "="),
        ("group_id", "group_id", "="),
        ("discipline", "discipline", "="),
        ("started_after", "started_at", ">="),
        ("started_before", "started_at", "<"),
    ):
        if getattr(given, attribute) is not None:

            def get(variables: VariableValues, attribute: str = attribute) -> Any:
                return getattr(checked(variables), attribute)

            conditions.append(f"{{a}}.{column} {op} {c.param(get)}")
    return conditions


def compile_operation(
    schema: GraphQLSchema,
    fragments: dict[str, FragmentDefinitionNode],
    selection_set: SelectionSetNode,
    variables: VariableValues,
    sql: JsonSql,
    marks: Mapping[tuple[str, str], Mark],
) -> list[RootStatement]:
    """One statement per root field of a query operation, or NotCompilable.

    `variables` carry each mask's value under `mark_variable(mark)`.
    """
    root = Compiler(schema, fragments, variables, sql, marks, FIELDS)
    statements = []
    for key, nodes in root.unmarked("Query", [selection_set]).items():
        compiler = Compiler(schema, fragments, variables, sql, marks, FIELDS)
        statements.append(_root(compiler, key, nodes))
    return statements
