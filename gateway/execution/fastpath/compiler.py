"""How a query's selections become SQL that returns their JSON: objects, rows, Relay connections,
the policy's marks. Which SQL each of the schema's fields is comes from the field table it is
given (`fastpath/club.py`).

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
    Undefined,
    VariableNode,
    get_named_type,
    is_leaf_type,
    is_non_null_type,
)
from graphql.execution.values import VariableValues, get_argument_values

from gateway.datasources.records import Page
from gateway.datasources.sql.json_sql import JsonSql
from gateway.execution.policy import Mark, Mask, mark_variable
from gateway.schema.ownership import owner_of
from gateway.schema.pagination import Listing

__all__ = [
    "Build",
    "Compiler",
    "Getter",
    "NotCompilable",
    "PagedRows",
    "RootStatement",
    "Rows",
    "once_per_request",
]

Getter = Callable[[VariableValues], Any]
Build = Callable[["Compiler", str, list[FieldNode]], str]  # a field's SQL, given the row's alias
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
class Rows:
    """The rows of a list: their table, its join to the owner, and their order."""

    table: str
    join: str  # extra FROM text joining the row's table to the owner, with {a} and {m} aliases
    order: tuple[tuple[str, str], ...]  # (column, ASC|DESC)


@dataclass(frozen=True, slots=True)
class PagedRows:
    """A paginated list: its rows, and the listing its cursors belong to."""

    listing: Listing[Any]
    rows: Rows


def once_per_request(get: Getter) -> Getter:
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


def _all_arguments(definition: GraphQLField, node: FieldNode) -> Callable[[VariableValues], dict[str, Any]]:
    return lambda variables: get_argument_values(definition, node, variables)


def _variable_arguments(definition: GraphQLField, node: FieldNode) -> Getter | None:
    """The arguments of a field given every one of them as a variable (`user(id: $id)`), read
    straight from the coerced variables, as graphql-core reads them (~3 us less per lookup); None
    when any is a literal or left out. A variable absent, or null for a non-null argument, leaves
    the arguments to graphql-core, with its defaults and its errors."""
    arguments = node.arguments or ()
    given = {a.name.value: a.value.name.value for a in arguments if isinstance(a.value, VariableNode)}
    if len(given) != len(arguments) or set(given) != set(definition.args):
        return None
    reads = [
        (argument.out_name or name, given[name], is_non_null_type(argument.type))
        for name, argument in definition.args.items()
    ]
    general = _all_arguments(definition, node)

    def read(variables: VariableValues) -> dict[str, Any]:
        coerced, values = variables.coerced, {}
        for out_name, variable, required in reads:
            value = coerced.get(variable, Undefined)
            if value is Undefined or (value is None and required):
                return general(variables)
            values[out_name] = value
        return values

    return read


class Compiler:
    """Builds the SQL of one root field from its selections, with the field table it is given."""

    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: dict[str, FragmentDefinitionNode],
        variables: VariableValues,
        sql: JsonSql,
        marks: Mapping[tuple[str, str], Mark],
        fields: Mapping[tuple[str, str], Build],
    ) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variables = variables
        self.sql = sql
        self.marks = marks
        self.fields = fields
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
                    given = self.variables.coerced.get(value.name.value)
                    if not isinstance(given, bool):
                        # Null or absent: `if: Boolean!` is then an error, which the interpreted path gives.
                        raise NotCompilable(f"@{name} without a boolean")
                    condition = given
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

    def unmarked(
        self, type_name: str, nodes: Iterable[FieldNode | SelectionSetNode]
    ) -> dict[str, list[FieldNode]]:
        """`collect`, for a type whose fields the compiler writes without the policy's marks (the root,
        connections, edges, PageInfo): a marked field there is NotCompilable, so Strawberry applies it."""
        fields = self.collect(type_name, nodes)
        for field_nodes in fields.values():
            if (type_name, field_nodes[0].name.value) in self.marks:
                raise NotCompilable(f"{type_name}.{field_nodes[0].name.value} carries a mark")
        return fields

    def field(self, parent: str, name: str) -> GraphQLField:
        type_ = self.schema.get_type(parent)
        if not isinstance(type_, GraphQLObjectType) or name not in type_.fields:
            raise NotCompilable(f"{parent}.{name}")
        return type_.fields[name]

    def arguments(self, parent: str, nodes: list[FieldNode], shared: bool = True) -> Getter:
        """The field's coerced arguments, as a function of the variables: computed once per request
        when `shared` (several parameters derive from them), else at each call."""
        definition, node = self.field(parent, nodes[0].name.value), nodes[0]
        read = _variable_arguments(definition, node) or _all_arguments(definition, node)
        return once_per_request(read) if shared else read

    # -- objects -----------------------------------------------------------------------

    def object(self, type_name: str, a: str, nodes: Iterable[FieldNode]) -> str:
        """The JSON object of the `type_name` row aliased `a`, for the selections in `nodes`."""
        pairs: list[tuple[str, str]] = []
        for key, field_nodes in self.collect(type_name, nodes).items():
            name = field_nodes[0].name.value
            if name == "__typename":
                value = self.sql.literal(type_name)
            else:
                build = self.fields.get((type_name, name))
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

    def cursor(self, page: PagedRows, a: str) -> str:
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
        page: PagedRows,
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
        for key, field_nodes in self.unmarked(connection_type, nodes).items():
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

    def keyset(self, page: PagedRows, arguments: Getter, current: Page) -> list[str]:
        """The conditions of the cursors given: rows after `after`, before `before`, in the list's order."""
        conditions = []
        for argument in ("after", "before"):
            if getattr(current, argument) is None:
                continue

            @once_per_request
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

    def beyond(self, rows: Rows, values: list[str], later: bool, strict: bool) -> str:
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

    def last_rows(self, page: PagedRows, window: list[str], size: int) -> list[str]:
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

    def source(self, rows: Rows, a: str, conditions: list[str]) -> str:
        m = a + "m"
        text = f"FROM {rows.table} {a}{rows.join.format(a=a, m=m)}"
        if conditions:
            text += " WHERE " + " AND ".join(c.format(a=a, m=m) for c in conditions)
        return text

    def order(self, rows: Rows, a: str, reverse: bool = False) -> str:
        flip = {"ASC": "DESC", "DESC": "ASC"}
        return ", ".join(f"{a}.{c} {flip[d] if reverse else d}" for c, d in rows.order)

    def edge(self, node_type: str, edge_type: str, page: PagedRows, a: str, nodes: list[FieldNode]) -> str:
        pairs: list[tuple[str, str]] = []
        for key, field_nodes in self.unmarked(edge_type, nodes).items():
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
        self, page: PagedRows, window: list[str], size: int, backward: bool, nodes: list[FieldNode]
    ) -> str:
        """PageInfo of a page of `size` rows from the window's start (or its end, `backward`)."""
        pairs: list[tuple[str, str]] = []
        for key, field_nodes in self.unmarked("PageInfo", nodes).items():
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

    def edge_cursor(self, page: PagedRows, window: list[str], size: int, backward: bool, near: bool) -> str:
        """The cursor of the page's edge nearest the window's start (its end, `backward`), or farthest:
        row `size`, or the window's last when it is shorter."""
        if size == 0:
            return "NULL"
        if near:
            return self.cursor_at(page, window, backward, 0)
        at_size = self.cursor_at(page, window, backward, size - 1)
        return f"COALESCE({at_size}, {self.cursor_at(page, window, not backward, 0)})"

    def cursor_at(self, page: PagedRows, window: list[str], reverse: bool, offset: int) -> str:
        a = self.alias()
        return (
            f"(SELECT {self.cursor(page, a)} {self.source(page.rows, a, window)}"
            f" ORDER BY {self.order(page.rows, a, reverse)} LIMIT 1 OFFSET {offset})"
        )

    def plain_list(self, node_type: str, rows: Rows, conditions: list[str], nodes: list[FieldNode]) -> str:
        a = self.alias()
        element = self.object(node_type, a, nodes)
        return self.sql.array(element, a, self.source(rows, a, conditions), self.order(rows, a), None)
