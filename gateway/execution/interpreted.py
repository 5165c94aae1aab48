"""Strawberry's side of the executor: the executor's parsed document, and the policy's marks honoured."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from inspect import isawaitable
from typing import Any

from graphql import GraphQLResolveInfo
from strawberry.extensions import SchemaExtension

from gateway.execution.policy import Mark

__all__ = ["PipelineExtension"]


async def _apply_later(mark: Mark, parent: Any, value: Awaitable[Any]) -> Any:
    return mark.apply(parent, await value)


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
        marks = getattr(info.context, "marks", None)
        if marks:
            mark = marks.get((info.parent_type.name, info.field_name))
            if mark is not None:
                value = _next(root, info, *args, **kwargs)
                return _apply_later(mark, root, value) if isawaitable(value) else mark.apply(root, value)
        return _next(root, info, *args, **kwargs)
