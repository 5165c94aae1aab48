"""What one operation may cost: depth, aliases, root fields and an estimate of the rows it asks for.

A policy rule, so it holds on every path. The estimate multiplies down the tree like GitHub's
node limit: a connection asks for `first` (or `last`) rows for each row of its parent (the
default page when absent; for a variable, the value the operation runs with, its default
included), `nodes` for as many as its IDs; a plain list is counted as LIST_ESTIMATE rows. The
size of the document itself is bounded before this, by the parser (MAX_QUERY_TOKENS).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from weakref import ref

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    ListValueNode,
    OperationDefinitionNode,
    OperationType,
    SchemaMetaFieldDef,
    SelectionSetNode,
    TypeMetaFieldDef,
    VariableNode,
    get_named_type,
)

from gateway.errors import ErrorCode
from gateway.execution.policy import Mark, OperationView, Refused, Rule
from gateway.schema.pagination import DEFAULT_FIRST
from gateway.settings import Settings

__all__ = ["LIST_ESTIMATE", "Measures", "measure", "operation_limits"]

_META = {"__schema": SchemaMetaFieldDef, "__type": TypeMetaFieldDef}
# Rows assumed for a list field without `first` (a session's shots, a user's groups). Not their
# bounds: a session's 1,000 shots (MAX_SHOTS_PER_SESSION) would put the 50 newest sessions with
# their shots past the default MAX_QUERY_COST. Those caps, checked as shots are written and groups
# joined (MAX_GROUPS_PER_USER), bound them.
LIST_ESTIMATE = 10


@dataclass(frozen=True, slots=True)
class Measures:
    depth: int
    aliases: int
    root_fields: int
    cost: int


# What one level of a selection set asks for, its fragments flattened into it: (rows per row of
# its parent, levels of selection sets below it that are not introspection's, aliases, fields).
_Tally = tuple[int, int, int, int]
_NOTHING: _Tally = (0, 0, 0, 0)


class _Walk:
    """Tallies an operation's selections: a fragment counts as often as it is spread, but is walked
    once, however many fragments spread it (each spreading the next twice: 2**n fields)."""

    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: Mapping[str, FragmentDefinitionNode],
        variables: Mapping[str, Any],
    ) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variables = variables
        # By fragment, parent type and whether it is introspection's; None while being tallied.
        self.tallies: dict[tuple[str, str | None, bool], _Tally | None] = {}

    def page_size(self, node: FieldNode) -> int:
        """The rows a connection asks for: its `first`, or its `last`, else the default page."""
        sizes = [self.argument(node, "first"), self.argument(node, "last")]
        given = [size for size in sizes if isinstance(size, int) and not isinstance(size, bool)]
        return max(given) if given else DEFAULT_FIRST

    def ids(self, node: FieldNode) -> int:
        """The objects `nodes(ids:)` asks for: as many as its IDs."""
        value = self.argument(node, "ids")
        return len(value) if isinstance(value, list) else LIST_ESTIMATE

    def argument(self, node: FieldNode, name: str) -> Any:
        """The argument's value where the document or a variable gives it; None otherwise."""
        for argument in node.arguments or ():
            if argument.name.value != name:
                continue
            value = argument.value
            if isinstance(value, VariableNode):
                return self.variables.get(value.name.value)
            if isinstance(value, IntValueNode):
                return int(value.value)
            if isinstance(value, ListValueNode):
                return list(value.values)
        return None

    def field(
        self, parent: GraphQLObjectType | GraphQLInterfaceType | None, name: str
    ) -> GraphQLField | None:
        """The field `name` of `parent`; of an interface, that of the first type implementing it that
        has one (the fragments of `node { ... on User { groups } }` are flattened into the interface)."""
        if parent is None:
            return None
        if name in parent.fields or isinstance(parent, GraphQLObjectType):
            return parent.fields.get(name)
        for type_ in self.schema.get_possible_types(parent):
            if name in type_.fields:
                return type_.fields[name]
        return None

    def level(
        self,
        parent: GraphQLObjectType | GraphQLInterfaceType | None,
        selection_set: SelectionSetNode | None,
        introspecting: bool = False,
    ) -> _Tally:
        """What `selection_set` asks for per row of `parent`, fragments flattened into it.

        Introspection adds no depth (GraphiQL's and codegen's own query is 15 deep) but its lists
        count like any other, so a recursive one grows past the cost limit.
        """
        cost = depth = aliases = fields = 0
        for selection in selection_set.selections if selection_set else ():
            if isinstance(selection, FieldNode):
                tally = self.field_tally(parent, selection, introspecting)
            elif isinstance(selection, InlineFragmentNode):
                tally = self.level(parent, selection.selection_set, introspecting)
            elif isinstance(selection, FragmentSpreadNode):
                tally = self.spread(parent, selection.name.value, introspecting)
            else:
                continue
            cost += tally[0]
            depth = max(depth, tally[1])
            aliases += tally[2]
            fields += tally[3]
        return cost, depth, aliases, fields

    def spread(
        self, parent: GraphQLObjectType | GraphQLInterfaceType | None, name: str, introspecting: bool
    ) -> _Tally:
        """The fragment `name` spread in a selection of `parent`: tallied at its first spread only."""
        key = (name, parent.name if parent is not None else None, introspecting)
        if key in self.tallies:
            return self.tallies[key] or _NOTHING  # None: a fragment cycle, which validation refuses
        fragment = self.fragments.get(name)
        if fragment is None:
            return _NOTHING
        self.tallies[key] = None
        tally = self.tallies[key] = self.level(parent, fragment.selection_set, introspecting)
        return tally

    def field_tally(
        self, parent: GraphQLObjectType | GraphQLInterfaceType | None, node: FieldNode, introspecting: bool
    ) -> _Tally:
        """One field, per row of `parent`: the rows it asks for and those its selection asks for."""
        aliases = 0 if node.alias is None else 1
        if node.selection_set is None:
            return 0, 0, aliases, 1
        name = node.name.value
        field = _META.get(name) or self.field(parent, name)
        child = get_named_type(field.type) if field is not None else None
        child_type = child if isinstance(child, GraphQLObjectType | GraphQLInterfaceType) else None
        many, counted = 1, 0
        if field is not None and "first" in field.args:
            many = counted = max(0, self.page_size(node))
        elif field is not None and "ids" in field.args:
            many = counted = self.ids(node)
        elif field is not None and _is_list(field.type) and not _edges(parent, node):
            many = counted = LIST_ESTIMATE
        inside = introspecting or name.startswith("__")
        cost, depth, below, _ = self.level(child_type, node.selection_set, inside)
        return counted + many * cost, 0 if inside else 1 + depth, aliases + below, 1


def _edges(parent: GraphQLObjectType | GraphQLInterfaceType | None, node: FieldNode) -> bool:
    """A connection's edges: as many as its `first`, already counted."""
    return parent is not None and parent.name.endswith("Connection") and node.name.value == "edges"


def _is_list(type_: Any) -> bool:
    if isinstance(type_, GraphQLNonNull):
        type_ = type_.of_type
    return isinstance(type_, GraphQLList)


def measure(
    schema: GraphQLSchema,
    operation: OperationDefinitionNode,
    fragments: Mapping[str, FragmentDefinitionNode],
    variables: Mapping[str, Any],
) -> Measures:
    """Depth, aliases, root fields and estimated rows of `operation`."""
    walk = _Walk(schema, fragments, variables)
    root = {
        OperationType.QUERY: schema.query_type,
        OperationType.MUTATION: schema.mutation_type,
        OperationType.SUBSCRIPTION: schema.subscription_type,
    }[operation.operation]
    cost, depth, aliases, root_fields = walk.level(root, operation.selection_set)
    return Measures(depth=1 + depth, aliases=aliases, root_fields=root_fields, cost=cost)


_SIZED = (int, list)  # the variables that can change a measure


def operation_limits(settings: Settings, schema: GraphQLSchema) -> Rule:
    """The rule refusing operations past MAX_QUERY_DEPTH, MAX_ALIASES, MAX_ROOT_FIELDS or MAX_QUERY_COST."""
    bounds = (
        ("depth", settings.max_query_depth, "MAX_QUERY_DEPTH", "levels deep"),
        ("aliases", settings.max_aliases, "MAX_ALIASES", "aliases"),
        ("root_fields", settings.max_root_fields, "MAX_ROOT_FIELDS", "root fields"),
        ("cost", settings.max_query_cost, "MAX_QUERY_COST", "rows estimated"),
    )

    # Verdicts by operation and by the integer variables and list lengths, by name, the only values
    # that change the measures (`first: $n`, `ids: $ids`). The variables are those the operation
    # runs with: declared, defaults applied, coerced (`100.0` is the Int 100). Keyed by the node's
    # id, checked through a weak reference: an AST node hashes its whole tree, which cost more
    # than measuring.
    known: dict[tuple[int, tuple[Any, ...]], tuple[ref[OperationDefinitionNode], int, str | None]] = {}

    def verdict(measures: Measures) -> str | None:
        """Why the measures are refused, or None."""
        for attribute, limit, setting, what in bounds:
            value = getattr(measures, attribute)
            if value > limit:
                return f"the operation is too complex: {value} {what}, more than {setting}={limit}"
        return None

    def rule(operation: OperationView) -> Iterable[Mark]:
        variables = operation.variables
        node = operation.operation
        sized: list[Any] = []  # a loop, not a comprehension: no call when there is nothing to size
        for name, value in variables.items():
            if isinstance(value, _SIZED):
                sized.append((name, len(value) if isinstance(value, list) else value))
        key = (id(node), tuple(sized))
        entry = known.get(key)
        if entry is None or entry[0]() is not node:
            measures = measure(schema, node, operation.fragments, variables)
            if len(known) >= 1024:
                known.clear()
            entry = known[key] = (ref(node), measures.cost, verdict(measures))
        operation.context.cost = entry[1]
        if entry[2] is not None:
            raise Refused(ErrorCode.QUERY_TOO_COMPLEX, entry[2])
        return ()

    return rule
