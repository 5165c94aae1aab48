"""Builds our input types straight from graphql-core's coerced values.

Strawberry's generic argument conversion re-resolves every field's type for every value, about
3 µs each: a session with 10 shots took 250 µs of a mutation's time. graphql-core has already
coerced and validated the values, so building the dataclasses is all that is left; Strawberry's
`from_input` hook (on the type's definition) lets a type do that itself. The semantics are
Strawberry's: fields without a default start as None, absent fields keep their default
(UNSET stays UNSET), nested input objects are built the same way.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from strawberry.types.arguments import InputContext
from strawberry.types.base import StrawberryList, StrawberryOptional, has_object_definition

__all__ = ["build_directly"]


def _nested(type_: Any) -> tuple[type | None, bool]:
    """The input class a field holds (alone or in a list), and whether it is a list."""
    while isinstance(type_, StrawberryOptional):
        type_ = type_.of_type
    many = isinstance(type_, StrawberryList)
    if many:
        type_ = type_.of_type
        while isinstance(type_, StrawberryOptional):
            type_ = type_.of_type
    return (type_ if has_object_definition(type_) else None), many


class _DirectBuilder:
    """The `from_input` of one input class; learns its field names on first use."""

    def __init__(self, cls: type) -> None:
        self.definition = cls.__strawberry_definition__  # type: ignore[attr-defined]
        self.required = [
            f.python_name
            for f in self.definition.fields
            if f.default_value is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        ]
        self.plan: list[tuple[str, str, type | None, bool]] | None = None

    def __call__(self, target: type, value: Mapping[str, Any], context: InputContext) -> Any:
        if self.plan is None:
            self.plan = [
                (
                    context.config.name_converter.from_field(f),
                    f.python_name,
                    *_nested(f.resolve_type(type_definition=self.definition)),
                )
                for f in self.definition.fields
            ]
        kwargs: dict[str, Any] = dict.fromkeys(self.required)
        for graphql_name, python_name, nested, many in self.plan:
            if graphql_name in value:
                given = value[graphql_name]
                if nested is not None and given is not None:
                    build = nested.__strawberry_definition__.from_input  # type: ignore[attr-defined]
                    if many:
                        given = [build(nested, v, context) for v in given]
                    else:
                        given = build(nested, given, context)
                kwargs[python_name] = given
        return target(**kwargs)


def build_directly(*classes: type) -> None:
    """Give each input class a `from_input` that builds it without Strawberry's generic conversion."""
    for cls in classes:
        cls.__strawberry_definition__.from_input = _DirectBuilder(cls)  # type: ignore[attr-defined]
