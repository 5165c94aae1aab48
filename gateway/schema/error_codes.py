"""Gives every GraphQL error an `extensions.code`, and hides unexpected failures in production."""

from __future__ import annotations

import logging
import re
import traceback

from graphql import GraphQLError

from gateway.errors import ErrorCode, GatewayError

__all__ = ["INTERNAL_MESSAGE", "apply_error_codes"]

log = logging.getLogger("gateway.errors")

INTERNAL_MESSAGE = "Internal server error"
# How graphql-core words a suggestion: " Did you mean 'email'?", " Did you mean the enum value 'A' or 'B'?"
_SUGGESTION = re.compile(r"\s*Did you mean [^?]*\?")
# graphql-core's validation rules about variables (unused, undefined, of an output type, in the
# wrong position): the document is invalid. Its other "Variable …" errors are about the values sent.
_INVALID_VARIABLE = re.compile(
    r"Variable '\$\w+' "
    r"(is never used|is not defined|cannot be non-input type|of type '[^']*' used in position)"
)
# graphql-core's validation rule for a required argument left out of the document; it names the
# argument with its field or directive, `Argument 'Query.node(id:)'`, where execution says `Argument 'if'`.
_MISSING_ARGUMENT = re.compile(
    r"Argument '[^']*\(\w+:\)' of type '[^']*' is required, but it was not provided"
)


def _where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "?"


def _code(error: GraphQLError) -> ErrorCode | None:
    """The code of an expected error, or None for an unexpected failure."""
    original = error.original_error
    if isinstance(original, GatewayError):
        return original.code
    if (
        (original is None or isinstance(original, GraphQLError))
        and error.message.startswith("Argument '")
        and not _MISSING_ARGUMENT.match(error.message)
    ):
        # graphql-core coercing an argument as it executes (`@include(if: $v)` with $v null).
        return ErrorCode.BAD_USER_INPUT
    if error.path is None and (
        original is None or isinstance(original, GraphQLError | TypeError | ValueError)
    ):
        # Raised by graphql-core before execution: syntax, validation, variable coercion.
        if error.message.startswith("Syntax Error"):
            return ErrorCode.GRAPHQL_PARSE_FAILED
        if error.message.startswith("Variable") and not _INVALID_VARIABLE.match(error.message):
            return ErrorCode.BAD_USER_INPUT
        return ErrorCode.GRAPHQL_VALIDATION_FAILED
    return None


def apply_error_codes(errors: list[GraphQLError], production: bool, suggestions: bool = True) -> None:
    """Set each error's code in place; log unexpected ones, masking them in production.

    Without `suggestions`, "Did you mean …?" is cut from messages: it spells out the schema's
    field, argument, type and enum names even when introspection is off.
    """
    for error in errors:
        if not suggestions and "Did you mean" in error.message:
            error.message = _SUGGESTION.sub("", error.message)
        code = _code(error)
        if code is None:
            code = ErrorCode.INTERNAL
            original = error.original_error or error
            path = ".".join(str(p) for p in error.path or ())
            if production:
                # Only the class and place: a driver's message can quote SQL or data.
                log.error("unexpected %s at %s (field %s)", type(original).__name__, _where(original), path)
                error.message = INTERNAL_MESSAGE
            else:
                log.error("unexpected error in field %s", path, exc_info=original)
        error.extensions = {**(error.extensions or {}), "code": code.value}
