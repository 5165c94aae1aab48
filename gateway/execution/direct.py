"""Mutations answered without graphql-core's executor: the root field's resolver called directly.

A mutation is one write whose answer is usually the written object's own scalars
(`createShootingSession(…) { id shotCount totalScore }`). graphql-core's executor (collecting
fields, completing the object, building an info per leaf) was a fifth of such a mutation's CPU.
Here the root field's resolve function (Strawberry's: argument conversion, field extensions,
exception handlers) is called with the info graphql-core would give it, and each selected scalar
is read by its own resolve function and serialized by graphql-core's leaf completion, errors
located and nulls propagated as graphql-core does. Whether an operation runs here is decided from
its document before anything runs: anything else (a nested object, a field with its own resolver,
a fragment, a directive, a field the policy marks) runs interpreted.
"""

from __future__ import annotations

from dataclasses import dataclass
from inspect import isawaitable
from typing import Any

import strawberry
from graphql import (
    FieldNode,
    GraphQLError,
    GraphQLField,
    GraphQLLeafType,
    GraphQLObjectType,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    get_nullable_type,
    is_leaf_type,
    is_non_null_type,
    is_object_type,
    located_error,
)
from graphql.execution import Executor as CoreExecutor
from graphql.execution.values import VariableValues, get_argument_values
from graphql.pyutils import Path
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types import ExecutionResult
from strawberry.types.field import StrawberryField

from gateway.execution.documents import Prepared
from gateway.execution.interpreted import execution_context
from gateway.execution.outcome import Outcome, encode

__all__ = ["DirectPlan", "direct_plan", "run_direct"]

_NOT_NULL = "Cannot return null for non-nullable field {}.{}."  # graphql-core's words


@dataclass(frozen=True, slots=True)
class _Leaf:
    key: str  # the response key (the alias, if any)
    node: FieldNode
    field: GraphQLField | None  # None for __typename
    type: GraphQLLeafType
    non_null: bool


@dataclass(frozen=True, slots=True)
class DirectPlan:
    """One mutation root field and the scalars it selects."""

    key: str
    node: FieldNode
    field: GraphQLField
    parent: GraphQLObjectType
    non_null: bool
    returns: GraphQLObjectType | GraphQLLeafType
    leaves: tuple[_Leaf, ...]  # empty when the field itself returns a scalar
    reads: frozenset[tuple[str, str]]  # (type, field) pairs: a policy mark on any runs it interpreted


def _basic(field: GraphQLField) -> bool:
    """Whether the field's value is its source's attribute (Strawberry's field has no resolver)."""
    definition = (field.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
    return isinstance(definition, StrawberryField) and definition.is_basic_field


def direct_plan(schema: GraphQLSchema, operation: OperationDefinitionNode) -> DirectPlan | None:
    """The plan of a mutation of one root field selecting only its result's own scalars, or None."""
    root = schema.mutation_type
    if operation.operation is not OperationType.MUTATION or root is None or operation.directives:
        return None
    selections = operation.selection_set.selections
    if len(selections) != 1 or not isinstance(node := selections[0], FieldNode) or node.directives:
        return None
    field = root.fields.get(node.name.value)
    if field is None or field.resolve is None:
        return None
    returns = get_nullable_type(field.type)  # type: ignore[arg-type]
    key = node.alias.value if node.alias else node.name.value
    reads = {(root.name, node.name.value)}
    leaves: list[_Leaf] = []
    if is_leaf_type(returns):
        if node.selection_set is not None:
            return None
    elif is_object_type(returns) and node.selection_set is not None:
        assert isinstance(returns, GraphQLObjectType)
        for selection in node.selection_set.selections:
            if not isinstance(selection, FieldNode) or selection.directives:
                return None
            if selection.selection_set or selection.arguments:
                return None
            name = selection.name.value
            leaf_key = selection.alias.value if selection.alias else name
            if name == "__typename":
                leaves.append(_Leaf(leaf_key, selection, None, schema.type_map["String"], True))  # type: ignore[arg-type]
                continue
            sub = returns.fields.get(name)
            if sub is None or not _basic(sub):
                return None
            leaf_type = get_nullable_type(sub.type)  # type: ignore[arg-type]
            if not is_leaf_type(leaf_type):
                return None
            leaves.append(_Leaf(leaf_key, selection, sub, leaf_type, is_non_null_type(sub.type)))
            reads.add((returns.name, name))
    else:
        return None
    return DirectPlan(
        key, node, field, root, is_non_null_type(field.type), returns, tuple(leaves), frozenset(reads)
    )


def _completed(plan: DirectPlan, result: Any, errors: list[GraphQLError]) -> Any:
    """The root field's value as graphql-core completes it; raises a located error that nulls it."""
    if isinstance(result, Exception):
        raise result
    if result is None:
        return None
    if not plan.leaves:
        return CoreExecutor.complete_leaf_value(plan.returns, result)  # type: ignore[arg-type]
    completed: dict[str, Any] = {}
    for leaf in plan.leaves:
        try:
            if leaf.field is None:
                value: Any = plan.returns.name
            else:
                value = leaf.field.resolve(result, None)  # type: ignore[misc]  # a basic field reads no info
                if isinstance(value, Exception):
                    raise value
                if value is not None:
                    value = CoreExecutor.complete_leaf_value(leaf.type, value)
            if value is None and leaf.non_null:
                raise TypeError(_NOT_NULL.format(plan.returns.name, leaf.node.name.value))
        except Exception as exc:
            error = located_error(exc, [leaf.node], [plan.key, leaf.key])
            if leaf.non_null:
                raise error from None
            errors.append(error)
            value = None
        completed[leaf.key] = value
    return completed


async def run_direct(
    plan: DirectPlan,
    schema: strawberry.Schema,
    prepared: Prepared,
    definition: OperationDefinitionNode,
    variables: VariableValues,
    context: Any,
) -> Outcome:
    """Run the planned mutation: its body, or a result with its errors (passed through Strawberry's
    `process_errors`) and the data graphql-core would answer beside them."""
    # The context graphql-core would run the operation in: it builds the root field's info.
    executor = execution_context(schema, prepared, definition, variables, context)
    errors: list[GraphQLError] = []
    path = Path(None, plan.key, plan.parent.name)
    try:
        info = executor.build_resolve_info(plan.field, [plan.node], plan.parent, path)
        args = get_argument_values(plan.field, plan.node, variables)
        result = plan.field.resolve(None, info, **args)  # type: ignore[misc]
        if isawaitable(result):
            result = await result
        value = _completed(plan, result, errors)
        if value is None and plan.non_null:
            raise TypeError(_NOT_NULL.format(plan.parent.name, plan.node.name.value))
        data: dict[str, Any] | None = {plan.key: value}
    except Exception as exc:
        errors.append(located_error(exc, [plan.node], [plan.key]))
        data = None if plan.non_null else {plan.key: None}
    if not errors:
        return encode({"data": data})
    schema.process_errors(errors)
    return ExecutionResult(data=data, errors=errors)
