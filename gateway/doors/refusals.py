"""What /graphql answers before any operation runs, on every door: (status, headers, JSON body)."""

from __future__ import annotations

import logging
from typing import Any

from gateway.auth.tokens import TokenRejected
from gateway.errors import ErrorCode, GatewayError

__all__ = ["Refusal", "invalid_token", "unavailable"]

log = logging.getLogger("gateway.auth")

Refusal = tuple[int, dict[str, str], dict[str, Any]]


def _error(message: str, code: ErrorCode) -> dict[str, Any]:
    return {"data": None, "errors": [{"message": message, "extensions": {"code": code.value}}]}


def unavailable(exc: GatewayError) -> Refusal:
    """The data source cannot be opened: 503, coded UNAVAILABLE, naming the cause."""
    return 503, {}, _error(str(exc), ErrorCode.UNAVAILABLE)


def invalid_token(exc: TokenRejected) -> Refusal:
    """A bearer token that is not valid: 401 as RFC 6750 says; the reason goes to the log only."""
    log.info("bearer token refused: %s", exc)
    headers = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
    return 401, headers, _error("the bearer token is not valid", ErrorCode.UNAUTHENTICATED)
