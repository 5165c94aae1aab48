"""Gives every GraphQL error an `extensions.code`, and hides unexpected failures in production."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterator

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from gateway.errors import ErrorCode, GatewayError

__all__ = ["INTERNAL_MESSAGE", "ErrorCodes"]

log = logging.getLogger("gateway.errors")

INTERNAL_MESSAGE = "Internal server error"


def _where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "?"


class ErrorCodes(SchemaExtension):
    """Runs after each operation, on the errors it produced."""

    production = False

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if result is None or not result.errors:
            return
        result.errors = [self._coded(error) for error in result.errors]

    def _coded(self, error: GraphQLError) -> GraphQLError:
        original = error.original_error
        if isinstance(original, GatewayError):
            return self._with_code(error, error.message, original.code)
        if original is None:
            # Raised by graphql-core itself: syntax, validation or variable coercion.
            if error.message.startswith("Syntax Error"):
                code = ErrorCode.GRAPHQL_PARSE_FAILED
            elif error.message.startswith("Variable"):
                code = ErrorCode.BAD_USER_INPUT
            else:
                code = ErrorCode.GRAPHQL_VALIDATION_FAILED
            return self._with_code(error, error.message, code)
        path = ".".join(str(p) for p in error.path or ())
        if self.production:
            # Only the class and place: a driver's message can quote SQL or data.
            log.error("unexpected %s at %s (field %s)", type(original).__name__, _where(original), path)
            return self._with_code(error, INTERNAL_MESSAGE, ErrorCode.INTERNAL)
        log.error("unexpected error in field %s", path, exc_info=original)
        return self._with_code(error, error.message, ErrorCode.INTERNAL)

    @staticmethod
    def _with_code(error: GraphQLError, message: str, code: ErrorCode) -> GraphQLError:
        return GraphQLError(
            message,
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            original_error=error.original_error,
            extensions={**(error.extensions or {}), "code": code.value},
        )


def production_error_codes() -> type[ErrorCodes]:
    """The extension class configured for APP_ENV=production."""
    return type("ProductionErrorCodes", (ErrorCodes,), {"production": True})
