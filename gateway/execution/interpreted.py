"""Strawberry's side of the executor: the executor's parsed document, and the policy's marks honoured.

An operation the executor has parsed, validated and cleared runs on graphql-core's executor
directly, with Strawberry's execution context class, as `strawberry.Schema.execute` would run it
but without its extension machinery, which costs a mutation about a tenth of its time. What the
executor hands to Strawberry whole (documents that do not parse or validate, unknown operations,
subscriptions) reads the same document through `PipelineExtension`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from inspect import isawaitable
from typing import Any, cast

import strawberry
from graphql import ExecutionResult as CoreResult
from graphql import (
    GraphQLResolveInfo,
    MiddlewareManager,
    OperationDefinitionNode,
    default_field_resolver,
    default_type_resolver,
)
from graphql.execution import Executor as CoreExecutor
from graphql.execution.collect_fields import FragmentDetails
from graphql.execution.values import VariableValues
from strawberry.execution import optimized_is_awaitable
from strawberry.extensions import SchemaExtension
from strawberry.types import ExecutionResult

from gateway.execution.documents import Prepared
from gateway.execution.policy import Mark

__all__ = ["PipelineExtension", "execution_context", "run_prepared"]


async def _apply_later(mark: Mark, parent: Any, value: Awaitable[Any]) -> Any:
    return mark.apply(parent, await value)


def _marked(_next: Callable[..., Any], root: Any, info: GraphQLResolveInfo, *args: Any, **kwargs: Any) -> Any:
    """The field's value, with the policy's mark for the field (if any) applied to it."""
    marks = getattr(info.context, "marks", None)
    if marks:
        mark = marks.get((info.parent_type.name, info.field_name))
        if mark is not None:
            value = _next(root, info, *args, **kwargs)
            return _apply_later(mark, root, value) if isawaitable(value) else mark.apply(root, value)
    return _next(root, info, *args, **kwargs)


_MARKED = MiddlewareManager(_marked)


def execution_context(
    schema: strawberry.Schema,
    prepared: Prepared,
    definition: OperationDefinitionNode,
    variables: VariableValues,
    context: Any,
) -> CoreExecutor:
    """The execution context graphql-core's execute() would build for `definition`, with Strawberry's
    class; the executor has already found the operation and coerced its variables."""
    return schema.execution_context_class(
        schema._schema,  # Strawberry's graphql-core schema; no public accessor
        prepared.fragments,
        {name: FragmentDetails(fragment) for name, fragment in prepared.fragments.items()},
        None,
        context,
        definition,
        variables,
        default_field_resolver,
        default_type_resolver,
        default_field_resolver,
        middleware_manager=_MARKED if getattr(context, "marks", None) else None,
        is_awaitable=optimized_is_awaitable,  # type: ignore[arg-type]  # Strawberry passes it too
    )


async def run_prepared(
    schema: strawberry.Schema,
    prepared: Prepared,
    definition: OperationDefinitionNode,
    variables: VariableValues,
    context: Any,
) -> ExecutionResult:
    """Execute `definition` of a parsed and valid document with its coerced `variables`; errors
    pass Strawberry's `process_errors`."""
    outcome = execution_context(schema, prepared, definition, variables, context).execute_operation()
    result = cast(CoreResult, await outcome if isawaitable(outcome) else outcome)
    if result.errors:
        schema.process_errors(result.errors)
    return ExecutionResult(data=result.data, errors=result.errors, extensions=result.extensions)


class PipelineExtension(SchemaExtension):
    """Reads the document the executor already parsed and validated, and applies marks to field values.

    A request that did not come through the executor (no `prepared` in its context) is parsed
    and validated by Strawberry as usual.
    """

    def on_parse(self) -> Iterator[None]:
        prepared = getattr(self.execution_context.context, "prepared", None)
        if prepared is not None and prepared.document is not None:
            self.execution_context.graphql_document = prepared.document
        yield

    def on_validate(self) -> Iterator[None]:
        prepared = getattr(self.execution_context.context, "prepared", None)
        if prepared is not None and prepared.document is not None:
            self.execution_context.pre_execution_errors = list(prepared.errors)
        yield

    def resolve(
        self, _next: Callable[..., Any], root: Any, info: GraphQLResolveInfo, *args: Any, **kwargs: Any
    ) -> Any:
        return _marked(_next, root, info, *args, **kwargs)
