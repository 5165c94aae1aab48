"""Compiles a query's selection into one SQL statement per root field that returns the field's JSON.

The statement prints every value exactly as the interpreted path does (opaque IDs, cursors,
timestamps, floats), so the response can be written from the database's bytes. Anything the
compiler does not know raises `NotCompilable`, and the operation runs through Strawberry.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    BooleanValueNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLField,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    SelectionSetNode,
    VariableNode,
    get_named_type,
    is_leaf_type,
    is_non_null_type,
)
from graphql.execution.values import VariableValues, get_argument_values

from gateway.datasources.records import Page, SessionFilter
from gateway.datasources.sql.json_sql import JsonSql
from gateway.execution.fastpath.refetch import node_by_id, nodes_by_ids
from gateway.execution.policy import Mark, Mask
from gateway.schema.ids import decode_id
from gateway.schema.inputs import ShootingSessionFilter, ShootingSessionOrder, id_of
from gateway.schema.ownership import owner_of
from gateway.schema.pagination import Listing
from gateway.schema.queries import ACTIVITIES, GROUPS, SESSIONS, USERS, session_filter
from gateway.schema.types import MEMBERS, SESSIONS_NEWEST_FIRST, ActivityKind

__all__ = ["NotCompilable", "RootStatement", "compile_operation", "mark_variable"]

Getter = Callable[[VariableValues], Any]
_MARK = re.compile("\x00(\\d+)\x00")


class NotCompilable(Exception):
    """The operation needs the interpreted path."""


@dataclass(frozen=True, slots=True)
class RootStatement:
    """One root field: its response key and either a statement with its parameters or a constant."""

    key: str
    sql: str | None
    params: tuple[Getter, ...]
    constant: bytes = b"null"


@dataclass(frozen=True, slots=True)
class _Rows:
    """The rows of a list: their table, its join to the owner, and their order."""

    table: str
    join: str  # extra FROM text joining the row's table to the owner, with {a} and {m} aliases
    order: tuple[tuple[str, str], ...]  # (column, ASC|DESC)


@dataclass(frozen=True, slots=True)
class _Page:
    """A paginated list: its rows, and the listing its cursors belong to."""

    listing: Listing[Any]
    rows: _Rows


_SESSIONS_TABLE = "shooting_sessions"


def _once_per_request(get: Getter) -> Getter:
    """`get`, remembering its value for the last request's variables.

    Several parameters derive from one argument (a cursor's two keys, a filter's fields);
    each request's variables are a new object, so they are decoded once, not per parameter.
    """
    last: list[Any] = [None, None]

    def remembered(variables: VariableValues) -> Any:
        if last[0] is not variables:
            last[1] = get(variables)
            last[0] = variables
        return last[1]

    return remembered


def mark_variable(mark: Mark) -> str:
    """The name under which a mark's value travels with the variables (no GraphQL name can clash)."""
    return f"\x00{mark.type_name}.{mark.field_name}"


class _Compiler:
    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: dict[str, FragmentDefinitionNode],
        variables: VariableValues,
        sql: JsonSql,
        marks: Mapping[tuple[str, str], Mark],
    ) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variables = variables
        self.sql = sql
        self.marks = marks
        self.getters: list[Getter] = []
        self.aliases = 0
        # Conditions the rows must meet for the JSON to be what the interpreted path returns;
        # when one fails the statement says so, and Strawberry answers (with its errors).
        self.checks: list[str] = []
        self.rows = ""  # the rows of the list being built: FROM … ORDER BY … LIMIT …

    # -- plumbing --------------------------------------------------------------------

    def alias(self) -> str:
        self.aliases += 1
        return f"t{self.aliases}"

    def param(self, getter: Getter) -> str:
        """A marker for a value computed from the variables when the statement runs."""
        getter(self.variables)  # fails now, at compile time, on a value the statement would refuse
        self.getters.append(getter)
        return f"\x00{len(self.getters) - 1}\x00"

    def finish(self, key: str, text: str) -> RootStatement:
        if self.checks:
            text += ", (" + " AND ".join(self.checks) + ") AS ok"
        order = [int(m.group(1)) for m in _MARK.finditer(text)]
        return RootStatement(key, _MARK.sub("?", text), tuple(self.getters[i] for i in order))

    def included(self, node: FieldNode | InlineFragmentNode | FragmentSpreadNode) -> bool:
        for directive in node.directives or ():
            name = directive.name.value
            if name not in ("skip", "include"):
                raise NotCompilable(f"directive @{name}")
            condition = False
            for argument in directive.arguments or ():
                value = argument.value
                if isinstance(value, BooleanValueNode):
                    condition = value.value
                elif isinstance(value, VariableNode):
                    condition = bool(self.variables.coerced.get(value.name.value))
            if condition == (name == "skip"):
                return False
        return True

    def collect(
        self, type_name: str, nodes: Iterable[FieldNode | SelectionSetNode]
    ) -> dict[str, list[FieldNode]]:
        """The sub-fields of `nodes` by response key, in first-seen order, fragments flattened."""
        fields: dict[str, list[FieldNode]] = {}
        seen: set[str] = set()
        type_ = self.schema.get_type(type_name)
        # A fragment applies on the type itself and on an interface it implements (`... on Node`).
        applies = {type_name, *(i.name for i in getattr(type_, "interfaces", ()))}

        def visit(selection_set: SelectionSetNode | None) -> None:
            for selection in selection_set.selections if selection_set else ():
                if not self.included(selection):  # type: ignore[arg-type]
                    continue
                if isinstance(selection, FieldNode):
                    key = selection.alias.value if selection.alias else selection.name.value
                    fields.setdefault(key, []).append(selection)
                elif isinstance(selection, InlineFragmentNode):
                    if selection.type_condition is None or selection.type_condition.name.value in applies:
                        visit(selection.selection_set)
                elif isinstance(selection, FragmentSpreadNode):
                    name = selection.name.value
                    fragment = self.fragments[name]
                    if name not in seen and fragment.type_condition.name.value in applies:
                        seen.add(name)
                        visit(fragment.selection_set)

        for node in nodes:
            visit(node if isinstance(node, SelectionSetNode) else node.selection_set)
        return fields

    def field(self, parent: str, name: str) -> GraphQLField:
        type_ = self.schema.get_type(parent)
        if not isinstance(type_, GraphQLObjectType) or name not in type_.fields:
            raise NotCompilable(f"{parent}.{name}")
        return type_.fields[name]

    def arguments(self, parent: str, nodes: list[FieldNode]) -> Getter:
        """The field's coerced arguments, as a function of the variables (computed once per request)."""
        definition, node = self.field(parent, nodes[0].name.value), nodes[0]
        return _once_per_request(lambda variables: get_argument_values(definition, node, variables))

    # -- objects -----------------------------------------------------------------------

    def object(self, type_name: str, a: str, nodes: Iterable[FieldNode]) -> str:
        """The JSON object of the `type_name` row aliased `a`, for the selections in `nodes`."""
        pairs: list[tuple[str, str]] = []
        for key, field_nodes in self.collect(type_name, nodes).items():
            name = field_nodes[0].name.value
            if name == "__typename":
                pairs.append((key, self.sql.literal(type_name)))
                continue
            build = _FIELDS.get((type_name, name))
            if build is None:
                raise NotCompilable(f"{type_name}.{name}")
            rows = self.rows
            value = build(self, a, field_nodes)
            self.rows = rows  # a list inside this field set its own; this object's fields read ours
            mark = self.marks.get((type_name, name))
            if mark is not None:
                value = self.masked(mark, type_name, name, a, value)
            pairs.append((key, value))
        return self.sql.object(pairs)

    def masked(self, mark: Mark, type_name: str, name: str, a: str, value: str) -> str:
        """`value` as the policy's mark requires it; a mark SQL cannot honour is interpreted."""
        type_ = self.field(type_name, name).type
        # A masked non-null field is an error, and nested objects are JSON: both are Strawberry's.
        if not isinstance(mark, Mask) or is_non_null_type(type_) or not is_leaf_type(get_named_type(type_)):
            raise NotCompilable(f"{type_name}.{name} carries {type(mark).__name__}")
        if mark.visible_to is None:
            return "NULL"
        owner = f"{a}.{owner_of(type_name).column}"
        variable = mark_variable(mark)
        return f"CASE WHEN {owner} = {self.param(lambda v: v.coerced[variable])} THEN {value} END"

    def row(self, type_name: str, table: str, condition: str, nodes: list[FieldNode]) -> str:
        """The object of the one row of `table` meeting `condition` (aliased {a}), or null."""
        a = self.alias()
        body = self.object(type_name, a, nodes)
        return f"SELECT {body} FROM {table} {a} WHERE {condition.format(a=a)}"

    def id(self, type_name: str, column: str) -> str:
        return self.sql.base64url(self.sql.concat([self.sql.literal(f"{type_name}:"), self.sql.text(column)]))

    def cursor(self, page: _Page, a: str) -> str:
        parts = [self.sql.literal(f'["{page.listing.name}"')]
        for column, _ in page.rows.order:
            if column == "started_at":
                parts += [
                    self.sql.literal(',"'),
                    self.sql.timestamp(f"{a}.started_at"),
                    self.sql.literal('"'),
                ]
            else:
                parts += [self.sql.literal(","), self.sql.text(f"{a}.{column}")]
        parts.append(self.sql.literal("]"))
        return self.sql.base64url(self.sql.concat(parts))

    # -- lists -------------------------------------------------------------------------

    def connection(
        self,
        node_type: str,
        page: _Page,
        conditions: list[str],
        arguments: Getter,
        nodes: list[FieldNode],
        connection_type: str,
        correlated: bool = True,
    ) -> str:
        """A Relay connection over the rows of `page` meeting `conditions` (aliased {a})."""
        args = arguments(self.variables)
        current = page.listing.page(
            args.get("first"), args.get("after"), args.get("last"), args.get("before")
        )
        window = conditions + self.keyset(page, arguments, current)
        size, backward = current.first - 1, current.backward
        edge_type = connection_type.removesuffix("Connection") + "Edge"
        pairs: list[tuple[str, str]] = []
        for key, field_nodes in self.collect(connection_type, nodes).items():
            name = field_nodes[0].name.value
            if name == "__typename":
                pairs.append((key, self.sql.literal(connection_type)))
            elif name == "edges":
                a = self.alias()
                shown = window + self.last_rows(page, window, size) if backward and size else window
                source, order = self.source(page.rows, a, shown), self.order(page.rows, a)
                self.rows = f"{source} ORDER BY {order} LIMIT {size}"
                edge = self.edge(node_type, edge_type, page, a, field_nodes)
                pairs.append((key, self.sql.array(edge, a, source, order, size, correlated)))
            elif name == "pageInfo":
                pairs.append((key, self.page_info(page, window, size, backward, field_nodes)))
            elif name == "totalCount":
                a = self.alias()
                pairs.append((key, f"(SELECT COUNT(*) {self.source(page.rows, a, conditions)})"))
            else:
                raise NotCompilable(f"{connection_type}.{name}")
        return self.sql.object(pairs)

    def keyset(self, page: _Page, arguments: Getter, current: Page) -> list[str]:
        """The conditions of the cursors given: rows after `after`, before `before`, in the list's order."""
        conditions = []
        for argument in ("after", "before"):
            if getattr(current, argument) is None:
                continue

            @_once_per_request
            def values(variables: VariableValues, argument: str = argument) -> tuple[Any, ...]:
                args = arguments(variables)
                given = page.listing.page(
                    args.get("first"), args.get("after"), args.get("last"), args.get("before")
                )
                found: tuple[Any, ...] | None = getattr(given, argument)
                if found is None:
                    raise NotCompilable("the cursor went away")
                return found

            def value(i: int, values: Getter = values) -> Getter:
                return lambda variables: values(variables)[i]

            later = argument == "after"
            markers = [self.param(value(i)) for i in range(len(page.rows.order))]
            conditions.append(self.beyond(page.rows, markers, later, strict=True))
        return conditions

    def beyond(self, rows: _Rows, values: list[str], later: bool, strict: bool) -> str:
        """The condition (row aliased {a}) that a row comes after (`later`) or before the sort values
        `values` in the list's order; `strict=False` admits the row holding them too."""
        descending = {d for _, d in rows.order} == {"DESC"}
        compare = ">" if later != descending else "<"
        last = compare if strict else compare + "="
        if len(rows.order) == 1:
            return f"{{a}}.{rows.order[0][0]} {last} {values[0]}"
        (first_col, _), (second_col, _) = rows.order
        return (
            f"({{a}}.{first_col} {compare} {values[0]} OR ({{a}}.{first_col} = {values[0]}"
            f" AND {{a}}.{second_col} {last} {values[1]}))"
        )

    def last_rows(self, page: _Page, window: list[str], size: int) -> list[str]:
        """The condition keeping the `size` rows at the end of the window (a backward page's rows).

        The row `size` places from the end bounds them: in the list's order, rows at or after it.
        A shorter window has no such row, and each row then compares with itself: all are kept.
        """
        bounds = []
        for column, _ in page.rows.order:
            b = self.alias()
            at = (
                f"SELECT {b}.{column} {self.source(page.rows, b, window)}"
                f" ORDER BY {self.order(page.rows, b, reverse=True)} LIMIT 1 OFFSET {size - 1}"
            )
            bounds.append(f"COALESCE(({at}), {{a}}.{column})")
        return [self.beyond(page.rows, bounds, later=True, strict=False)]

    def source(self, rows: _Rows, a: str, conditions: list[str]) -> str:
        m = a + "m"
        text = f"FROM {rows.table} {a}{rows.join.format(a=a, m=m)}"
        if conditions:
            text += " WHERE " + " AND ".join(c.format(a=a, m=m) for c in conditions)
        return text

    def order(self, rows: _Rows, a: str, reverse: bool = False) -> str:
        flip = {"ASC": "DESC", "DESC": "ASC"}
        return ", ".join(f"{a}.{c} {flip[d] if reverse else d}" for c, d in rows.order)

    def edge(self, node_type: str, edge_type: str, page: _Page, a: str, nodes: list[FieldNode]) -> str:
        pairs: list[tuple[str, str]] = []
        for key, field_nodes in self.collect(edge_type, nodes).items():
            name = field_nodes[0].name.value
            if name == "__typename":
                pairs.append((key, self.sql.literal(edge_type)))
            elif name == "cursor":
                pairs.append((key, self.cursor(page, a)))
            elif name == "node":
                pairs.append((key, self.object(node_type, a, field_nodes)))
            else:
                raise NotCompilable(f"{edge_type}.{name}")
        return self.sql.object(pairs)

    def page_info(
        self, page: _Page, window: list[str], size: int, backward: bool, nodes: list[FieldNode]
    ) -> str:
        """PageInfo of a page of `size` rows from the window's start (or its end, `backward`)."""
        pairs: list[tuple[str, str]] = []
        for key, field_nodes in self.collect("PageInfo", nodes).items():
            name = field_nodes[0].name.value
            if name == "__typename":
                pairs.append((key, self.sql.literal("PageInfo")))
            elif name in ("hasNextPage", "hasPreviousPage"):
                # Each answers for its own direction only, as graphql-relay-js does.
                if backward != (name == "hasPreviousPage"):
                    pairs.append((key, self.sql.boolean("1 = 0")))
                    continue
                a = self.alias()
                beyond = (
                    f"SELECT 1 {self.source(page.rows, a, window)}"
                    f" ORDER BY {self.order(page.rows, a, reverse=backward)} LIMIT 1 OFFSET {size}"
                )
                pairs.append((key, self.sql.boolean(f"({beyond}) IS NOT NULL")))
            elif name in ("startCursor", "endCursor"):
                near = (name == "startCursor") != backward
                pairs.append((key, self.edge_cursor(page, window, size, backward, near)))
            else:
                raise NotCompilable(f"PageInfo.{name}")
        return self.sql.object(pairs)

    def edge_cursor(self, page: _Page, window: list[str], size: int, backward: bool, near: bool) -> str:
        """The cursor of the page's edge nearest the window's start (its end, `backward`), or farthest:
        row `size`, or the window's last when it is shorter."""
        if size == 0:
            return "NULL"
        if near:
            return self.cursor_at(page, window, backward, 0)
        at_size = self.cursor_at(page, window, backward, size - 1)
        return f"COALESCE({at_size}, {self.cursor_at(page, window, not backward, 0)})"

    def cursor_at(self, page: _Page, window: list[str], reverse: bool, offset: int) -> str:
        a = self.alias()
        return (
            f"(SELECT {self.cursor(page, a)} {self.source(page.rows, a, window)}"
            f" ORDER BY {self.order(page.rows, a, reverse)} LIMIT 1 OFFSET {offset})"
        )

    def plain_list(self, node_type: str, rows: _Rows, conditions: list[str], nodes: list[FieldNode]) -> str:
        a = self.alias()
        element = self.object(node_type, a, nodes)
        return self.sql.array(element, a, self.source(rows, a, conditions), self.order(rows, a), None)


# -- the schema's fields, as SQL ------------------------------------------------------------

_Build = Callable[[_Compiler, str, list[FieldNode]], str]


def _column(column: str) -> _Build:
    return lambda c, a, nodes: f"{a}.{column}"


def _timestamp(column: str) -> _Build:
    return lambda c, a, nodes: c.sql.timestamp(f"{a}.{column}")


def _id(type_name: str) -> _Build:
    return lambda c, a, nodes: c.id(type_name, f"{a}.id")


def _to_one(type_name: str, table: str, column: str) -> _Build:
    return lambda c, a, nodes: c.sql.nested(c.row(type_name, table, f"{{a}}.id = {a}.{column}", nodes))


def _activity_kind(c: _Compiler, a: str, nodes: list[FieldNode]) -> str:
    # An activity kind this version does not know (written by a newer one) is an error in the
    # interpreted path: the statement checks the page's kinds, and the error comes from there.
    known = ", ".join(c.sql.literal(kind.value) for kind in ActivityKind)
    c.checks.append(f"NOT EXISTS (SELECT 1 FROM (SELECT {a}.kind {c.rows}) k WHERE k.kind NOT IN ({known}))")
    return f"{a}.kind"


def _average(c: _Compiler, a: str, nodes: list[FieldNode]) -> str:
    return (
        f"CASE WHEN {a}.shot_count = 0 THEN NULL"
        f" ELSE {c.sql.hundredths(f'{a}.total_tenths', f'{a}.shot_count')} END"
    )


_SESSIONS_OF_OWNER = _Page(
    SESSIONS_NEWEST_FIRST, _Rows(_SESSIONS_TABLE, "", (("started_at", "DESC"), ("id", "DESC")))
)
_MEMBERS = _Page(MEMBERS, _Rows("users", " JOIN memberships {m} ON {m}.user_id = {a}.id", (("id", "ASC"),)))
_GROUPS_OF_USER = _Rows("club_groups", " JOIN memberships {m} ON {m}.group_id = {a}.id", (("id", "ASC"),))
_SHOTS = _Rows("shots", "", (("sequence", "ASC"),))


def _sessions_of(owner: str, parent: str) -> _Build:
    def build(c: _Compiler, a: str, nodes: list[FieldNode]) -> str:
        return c.connection(
            "ShootingSession",
            _SESSIONS_OF_OWNER,
            [f"{{a}}.{owner} = {a}.id"],
            c.arguments(parent, nodes),
            nodes,
            "ShootingSessionConnection",
        )

    return build


def _members(c: _Compiler, a: str, nodes: list[FieldNode]) -> str:
    return c.connection(
        "User", _MEMBERS, [f"{{m}}.group_id = {a}.id"], c.arguments("Group", nodes), nodes, "UserConnection"
    )


def _groups_of_user(c: _Compiler, a: str, nodes: list[FieldNode]) -> str:
    return c.plain_list("Group", _GROUPS_OF_USER, [f"{{m}}.user_id = {a}.id"], nodes)


def _shots(c: _Compiler, a: str, nodes: list[FieldNode]) -> str:
    return c.plain_list("Shot", _SHOTS, [f"{{a}}.session_id = {a}.id"], nodes)


_FIELDS: dict[tuple[str, str], _Build] = {
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
    "users": ("User", _Page(USERS, _Rows("users", "", (("id", "ASC"),)))),
    "groups": ("Group", _Page(GROUPS, _Rows("club_groups", "", (("id", "ASC"),)))),
    "activities": ("Activity", _Page(ACTIVITIES, _Rows("activities", "", (("id", "DESC"),)))),
}


def _session_pages() -> dict[ShootingSessionOrder, _Page]:
    pages = {}
    for order in ShootingSessionOrder:
        direction = "DESC" if order is ShootingSessionOrder.STARTED_AT_DESC else "ASC"
        pages[order] = _Page(
            SESSIONS[order], _Rows(_SESSIONS_TABLE, "", (("started_at", direction), ("id", direction)))
        )
    return pages


_SESSION_PAGES = _session_pages()


def _root(c: _Compiler, key: str, nodes: list[FieldNode]) -> RootStatement:
    name = nodes[0].name.value
    if name == "__typename":
        return RootStatement(key, None, (), b'"Query"')
    if name not in _BY_ID and name not in _ROOT_LISTS and name not in ("shootingSessions", "node", "nodes"):
        raise NotCompilable(f"Query.{name}")  # introspection, say
    arguments = c.arguments("Query", nodes)
    if name == "node":
        return c.finish(key, f"SELECT {node_by_id(c, arguments, nodes)} AS data")
    if name == "nodes":
        return c.finish(key, f"SELECT {nodes_by_ids(c, arguments, nodes)} AS data")
    if name in _BY_ID:
        type_name, table = _BY_ID[name]

        def pk(variables: VariableValues) -> int | None:
            return decode_id(arguments(variables)["id"], type_name)

        body = c.row(type_name, table, f"{{a}}.id = {c.param(pk)}", nodes)
        return c.finish(key, f"SELECT ({body}) AS data")
    if name in _ROOT_LISTS:
        node_type, page = _ROOT_LISTS[name]
        conditions = _activity_conditions(c, arguments) if name == "activities" else []
    elif name == "shootingSessions":
        node_type, page = "ShootingSession", _SESSION_PAGES[arguments(c.variables)["orderBy"]]
        conditions = _session_conditions(c, arguments)
    connection_type = get_named_type(c.field("Query", name).type).name
    body = c.connection(node_type, page, conditions, arguments, nodes, connection_type, correlated=False)
    return c.finish(key, f"SELECT {body} AS data")


def _activity_conditions(c: _Compiler, arguments: Getter) -> list[str]:
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


def _session_conditions(c: _Compiler, arguments: Getter) -> list[str]:
    checked = _once_per_request(lambda variables: _filter(arguments, variables))
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
    root = _Compiler(schema, fragments, variables, sql, marks)
    statements = []
    for key, nodes in root.collect("Query", [selection_set]).items():
        compiler = _Compiler(schema, fragments, variables, sql, marks)
        statements.append(_root(compiler, key, nodes))
    return statements
