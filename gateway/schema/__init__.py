"""The GraphQL schema: types, queries, mutations, loaders and the request context."""

from __future__ import annotations

from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import ParserCache, ValidationCache
from strawberry.types import ExecutionContext

from gateway.schema.context import RequestContext
from gateway.schema.error_codes import apply_error_codes
from gateway.schema.mutations import Mutation
from gateway.schema.queries import Query

__all__ = ["RequestContext", "build_schema", "schema_sdl"]


class _GatewaySchema(strawberry.Schema):
    production = False

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Strawberry calls this on every error, parse to resolver, before it is sent."""
        apply_error_codes(errors, self.production)


def build_schema(production: bool = False) -> strawberry.Schema:
    """The schema, with production error masking when asked."""
    extensions: list[Any] = [
        lambda: ParserCache(maxsize=256),
        lambda: ValidationCache(maxsize=256),
    ]
    schema = _GatewaySchema(query=Query, mutation=Mutation, extensions=extensions)
    schema.production = production
    return schema


def schema_sdl() -> str:
    """The schema in SDL, as committed in schema.graphql."""
    return build_schema().as_str() + "\n"
