"""GraphQL results as HTTP answers, per GraphQL over HTTP: media type, status and the `data` entry.

A client that accepts `application/graphql-response+json` gets it (so every /graphql answer
carries `Vary: Accept`, as a cache must know), and a request that never
executed (it did not parse or validate, its variables were refused, a rule refused it) is then
answered without a `data` entry and with a 4xx status (401, 403 for sign-in refusals). Under
`application/json` every GraphQL result is a 200, as the spec asks, with one exception on both
media types: an answer whose errors are all UNAVAILABLE is a 503 with Retry-After, so load
balancers and monitors see the outage. (Under graphql-response+json a partial `data` keeps its
200: the spec requires 2xx whenever `data` is present and not null.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from strawberry.http import GraphQLHTTPResponse, process_result
from strawberry.types import ExecutionResult

from gateway.errors import ErrorCode
from gateway.execution.outcome import Outcome, encode

__all__ = [
    "GRAPHQL_RESPONSE",
    "GRAPHQL_VARY",
    "JSON",
    "RETRY_AFTER_SECONDS",
    "Answer",
    "answer_outcome",
    "batch_status",
    "body_of",
    "media_type",
    "status_of",
    "vary_also",
]

JSON = "application/json"
GRAPHQL_RESPONSE = "application/graphql-response+json"
RETRY_AFTER_SECONDS = 5  # how soon a client may try again after a 503

# A request that never executed, under graphql-response+json: its first error's code picks the status.
_NOT_EXECUTED_STATUS = {
    ErrorCode.UNAUTHENTICATED: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.UNAVAILABLE: 503,
    ErrorCode.TIMEOUT: 504,
    ErrorCode.INTERNAL: 500,
}


@dataclass(slots=True)  # not frozen: a frozen dataclass is built through object.__setattr__
class Answer:
    """An HTTP answer a door sends as it is."""

    status: int
    body: bytes
    media_type: str
    headers: Mapping[str, str] = field(default_factory=dict)


# A /graphql answer's media type and status follow Accept (GraphiQL's page or not), its CORS grant Origin.
GRAPHQL_VARY = "Accept, Origin"


def vary_also(vary: str | None, names: str) -> str:
    """A `Vary` value that also names each request header of `names` ("Accept, Origin"), once; `*`
    already covers them."""
    if not vary:
        return names
    present = {part.strip().lower() for part in vary.split(",")}
    if "*" in present:
        return vary
    missing = [name for name in names.split(", ") if name.lower() not in present]
    return ", ".join([vary, *missing])


@lru_cache(maxsize=64)  # clients send a handful of distinct Accept headers
def media_type(accept: str) -> str:
    """The media type to answer with: graphql-response+json when the client accepts it at least as
    much as application/json; application/json otherwise, for a missing Accept and for `*/*` too."""
    best = {JSON: 0.0, GRAPHQL_RESPONSE: 0.0}
    for part in accept.split(","):
        media, _, parameters = part.partition(";")
        media = media.strip().lower()
        if media in best:
            best[media] = max(best[media], _quality(parameters))
    return GRAPHQL_RESPONSE if best[GRAPHQL_RESPONSE] > 0 and best[GRAPHQL_RESPONSE] >= best[JSON] else JSON


def _quality(parameters: str) -> float:
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "q":
            try:
                return min(max(float(value), 0.0), 1.0)
            except ValueError:
                return 0.0
    return 1.0


def _codes(result: ExecutionResult) -> list[str]:
    return [(error.extensions or {}).get("code", ErrorCode.INTERNAL) for error in result.errors or ()]


def not_executed(result: ExecutionResult) -> bool:
    """Whether `result` answers an operation that never ran: no data, and no error with a path
    (field errors have one; parse, validation, variable and policy errors do not)."""
    return result.data is None and bool(result.errors) and all(e.path is None for e in result.errors or ())


def status_of(result: ExecutionResult, media: str) -> tuple[int, dict[str, str]]:
    """The status and extra headers answering `result` in `media`."""
    codes = _codes(result)
    if not codes:
        return 200, {}
    if set(codes) == {ErrorCode.UNAVAILABLE} and (media == JSON or result.data is None):
        return 503, {"Retry-After": str(RETRY_AFTER_SECONDS)}
    if media == GRAPHQL_RESPONSE and not_executed(result):
        status = _NOT_EXECUTED_STATUS.get(codes[0], 400)  # type: ignore[call-overload]
        return status, {"WWW-Authenticate": "Bearer"} if status == 401 else {}
    return 200, {}


def batch_status(results: Sequence[ExecutionResult], media: str) -> tuple[int, dict[str, str]]:
    """A batch is a 200, unless every operation in it failed for UNAVAILABLE alone: then a 503."""
    statuses = [status_of(result, JSON) for result in results]
    if statuses and all(status == 503 for status, _ in statuses):
        return statuses[0]
    return 200, {}


def body_of(result: ExecutionResult, media: str) -> GraphQLHTTPResponse:
    """The JSON object answering `result`: without `data` when it never ran, under graphql-response+json."""
    body = process_result(result)
    if media == GRAPHQL_RESPONSE and not_executed(result):
        body.pop("data", None)  # type: ignore[misc]
    return body


def answer_outcome(outcome: Outcome, media: str) -> Answer:
    """The answer to one operation's outcome: a compiled body (data, no errors) or Strawberry's result."""
    if isinstance(outcome, bytes):
        return Answer(200, outcome, media)
    status, headers = status_of(outcome, media)
    return Answer(status, encode(body_of(outcome, media)), media, headers)
