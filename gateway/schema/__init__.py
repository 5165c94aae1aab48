"""The GraphQL schema: types, queries, mutations, loaders and the request context."""

from __future__ import annotations

from collections.abc import Sequence

import strawberry
from graphql import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext

from gateway.schema.context import RequestContext
from gateway.schema.error_codes import apply_error_codes
from gateway.schema.mutations import Mutation
from gateway.schema.queries import Query

__all__ = ["BATCH_MAX_OPERATIONS", "RequestContext", "build_schema", "schema_sdl"]

BATCH_MAX_OPERATIONS = 10  # operations in one batched POST (a JSON array), as Apollo's BatchHttpLink sends


class _GatewaySchema(strawberry.Schema):
    production = False

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Strawberry calls this on every error, parse to resolver, before it is sent."""
        apply_error_codes(errors, self.production)


def build_schema(
    production: bool = False, extensions: Sequence[type[SchemaExtension]] = ()
) -> strawberry.Schema:
    """The schema, with production error masking when asked, and the executor's extensions."""
    schema = _GatewaySchema(
        query=Query,
        mutation=Mutation,
        extensions=list(extensions),
        config=StrawberryConfig(batching_config={"max_operations": BATCH_MAX_OPERATIONS}),
    )
    schema.production = production
    return schema


def schema_sdl() -> str:
    """The schema in SDL, as committed in schema.graphql."""
    return build_schema().as_str() + "\n"
