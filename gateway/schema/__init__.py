"""The GraphQL schema: types, queries, mutations, loaders and the request context."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from functools import partial

import strawberry
from graphql import ASTValidationRule, GraphQLError, NoSchemaIntrospectionCustomRule
from strawberry.extensions import AddValidationRules, SchemaExtension
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext

from gateway.schema.context import RequestContext
from gateway.schema.error_codes import apply_error_codes
from gateway.schema.instants import DATETIME
from gateway.schema.mutations import Mutation
from gateway.schema.queries import Query
from gateway.schema.subscriptions import Subscription

__all__ = ["BATCH_MAX_OPERATIONS", "RequestContext", "build_schema", "schema_sdl", "validation_rules"]

BATCH_MAX_OPERATIONS = 10  # operations in one batched POST (a JSON array), as Apollo's BatchHttpLink sends


class _GatewaySchema(strawberry.Schema):
    production = False
    suggestions = True

    def _warn_for_federation_directives(self) -> None:
        # Strawberry imports its federation directives (~4 ms of a cold start) on every Schema() only
        # to warn when one is used outside `strawberry.federation.Schema`; this schema uses none.
        return

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Strawberry calls this on every error, parse to resolver, before it is sent."""
        apply_error_codes(errors, self.production, self.suggestions)


def validation_rules(introspection: bool = True) -> tuple[type[ASTValidationRule], ...]:
    """The rules a document passes besides the specification's: none, or one refusing introspection
    (`__schema`, `__type`; `__typename` stays). Whoever validates a document applies them."""
    return () if introspection else (NoSchemaIntrospectionCustomRule,)


def build_schema(
    production: bool = False,
    extensions: Sequence[type[SchemaExtension]] = (),
    *,
    introspection: bool = True,
    suggestions: bool = True,
) -> strawberry.Schema:
    """The schema, with production error masking when asked, and the executor's extensions.

    `introspection=False` refuses introspection when Strawberry validates; `suggestions=False`
    takes "Did you mean …?" out of every error message.
    """
    rules = validation_rules(introspection)
    added: list[Callable[[], SchemaExtension]] = [partial(AddValidationRules, list(rules))] if rules else []
    schema = _GatewaySchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=[*extensions, *added],
        scalar_overrides={datetime: DATETIME},
        config=StrawberryConfig(batching_config={"max_operations": BATCH_MAX_OPERATIONS}),
    )
    schema.production = production
    schema.suggestions = suggestions
    return schema


def schema_sdl() -> str:
    """The schema in SDL, as committed in schema.graphql."""
    return build_schema().as_str() + "\n"
