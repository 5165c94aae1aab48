"""What /graphql answers before any operation runs, on every door."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from gateway.auth.tokens import TokenRejected
from gateway.doors.responses import GRAPHQL_RESPONSE, RETRY_AFTER_SECONDS, Answer
from gateway.errors import ErrorCode, GatewayError
from gateway.execution.operation import MalformedRequest
from gateway.execution.outcome import encode
from gateway.telemetry.exchange import CURRENT

__all__ = [
    "MAX_BODY_BYTES",
    "Refusal",
    "bad_request",
    "invalid_token",
    "not_by_get",
    "too_large",
    "unavailable",
]

log = logging.getLogger("gateway.auth")
http_log = logging.getLogger("gateway.http")

MAX_BODY_BYTES = 1024 * 1024  # a request body, on both doors (aiohttp's default client_max_size)


@dataclass(frozen=True, slots=True)
class Refusal:
    """A request refused before any operation ran: its status, error and headers."""

    status: int
    code: ErrorCode
    message: str
    headers: Mapping[str, str] = field(default_factory=dict)

    def answer(self, media: str) -> Answer:
        """The answer in `media`; graphql-response+json has no `data` entry for a request that never ran."""
        if (exchange := CURRENT.get()) is not None:
            exchange.refused(self.code.value, self.message)
        error = {"message": self.message, "extensions": {"code": self.code.value}}
        body = {"errors": [error]} if media == GRAPHQL_RESPONSE else {"data": None, "errors": [error]}
        return Answer(self.status, encode(body), media, self.headers)


def unavailable(exc: GatewayError) -> Refusal:
    """The data source cannot be opened: 503, coded UNAVAILABLE, naming the cause."""
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
    return Refusal(503, ErrorCode.UNAVAILABLE, str(exc), headers)


def invalid_token(exc: TokenRejected) -> Refusal:
    """A bearer token that is not valid: 401 as RFC 6750 says; the reason goes to the log only."""
    log.info("bearer token refused: %s", exc)
    headers = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
    return Refusal(401, ErrorCode.UNAUTHENTICATED, "the bearer token is not valid", headers)


def bad_request(exc: MalformedRequest) -> Refusal:
    """A body no operation can be read from: 400, coded BAD_REQUEST, logged as one line."""
    http_log.info("request refused: %s", exc)
    return Refusal(400, ErrorCode.BAD_REQUEST, str(exc))


def too_large() -> Refusal:
    """A body over MAX_BODY_BYTES: 413, coded BAD_REQUEST; the door reads no further."""
    message = f"the request body is larger than {MAX_BODY_BYTES} bytes"
    http_log.info("request refused: %s", message)
    return Refusal(413, ErrorCode.BAD_REQUEST, message)


def not_by_get(exc: MalformedRequest) -> Refusal:
    """A mutation sent by GET: 405 with `Allow: POST`, as GraphQL over HTTP requires; nothing ran."""
    http_log.info("request refused: %s", exc)
    return Refusal(405, ErrorCode.BAD_REQUEST, str(exc), {"Allow": "POST"})
