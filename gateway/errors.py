"""The error codes the API speaks, and the exceptions that carry them."""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "BadUserInput",
    "Conflict",
    "ErrorCode",
    "Forbidden",
    "GatewayError",
    "NeedsStream",
    "NotFound",
    "SessionFull",
    "SubscriptionsUnsupported",
    "TimedOut",
    "TooManyGroups",
    "TooManySubscriptions",
    "Unauthenticated",
    "Unavailable",
    "WriteUnconfirmed",
]


class ErrorCode(StrEnum):
    """Values of `extensions.code` in a GraphQL error."""

    BAD_USER_INPUT = "BAD_USER_INPUT"
    BAD_REQUEST = "BAD_REQUEST"  # an HTTP request no GraphQL operation can be read from
    NOT_FOUND = "NOT_FOUND"
    FORBIDDEN = "FORBIDDEN"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    QUERY_TOO_COMPLEX = "QUERY_TOO_COMPLEX"
    TIMEOUT = "TIMEOUT"
    PERSISTED_QUERY_NOT_FOUND = "PERSISTED_QUERY_NOT_FOUND"
    PERSISTED_QUERY_REQUIRED = "PERSISTED_QUERY_REQUIRED"
    CONFLICT = "CONFLICT"
    TOO_MANY_SUBSCRIPTIONS = "TOO_MANY_SUBSCRIPTIONS"  # SUBSCRIPTIONS_MAX reached on this instance
    SLOW_CONSUMER = "SLOW_CONSUMER"  # a subscriber fell more than SUBSCRIPTION_BUFFER updates behind
    SUBSCRIPTIONS_UNSUPPORTED = "SUBSCRIPTIONS_UNSUPPORTED"  # a serverless function cannot hold a stream
    UNAVAILABLE = "UNAVAILABLE"
    INTERNAL = "INTERNAL"
    GRAPHQL_PARSE_FAILED = "GRAPHQL_PARSE_FAILED"
    GRAPHQL_VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"


class GatewayError(Exception):
    """Base of every error the gateway raises on purpose; its message is safe to show a client."""

    code: ErrorCode = ErrorCode.INTERNAL


class BadUserInput(GatewayError):
    code = ErrorCode.BAD_USER_INPUT

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        super().__init__(f"{field}: {problem}")


class NotFound(GatewayError):
    code = ErrorCode.NOT_FOUND

    def __init__(self, kind: str, ident: str = "") -> None:
        self.kind = kind
        super().__init__(f"{kind} {ident} not found" if ident else f"{kind} not found")


class SessionFull(BadUserInput):
    """Adding `adding` shots would take a session holding `held` past its `limit`; nothing was written."""

    def __init__(self, held: int, adding: int, limit: int) -> None:
        super().__init__(
            "shots",
            f"a session holds at most {limit} shots and this one holds {held}:"
            f" {adding} more would make {held + adding} (start a new session)",
        )


class TooManyGroups(BadUserInput):
    """A member of `held` groups joining one more would pass the `limit`; nothing was written."""

    def __init__(self, held: int, limit: int) -> None:
        super().__init__(
            "groupId",
            f"a member belongs to at most {limit} groups and this one belongs to {held} (leave one first)",
        )


class Unauthenticated(GatewayError):
    """The operation needs a signed-in person and the request carries no token."""

    code = ErrorCode.UNAUTHENTICATED


class Forbidden(GatewayError):
    """The signed-in person may not do this; nothing was written."""

    code = ErrorCode.FORBIDDEN


class Conflict(GatewayError):
    code = ErrorCode.CONFLICT


class Unavailable(GatewayError):
    code = ErrorCode.UNAVAILABLE

    def __init__(self, reason: str = "the database is unavailable, try again shortly") -> None:
        super().__init__(reason)


class SubscriptionsUnsupported(GatewayError):
    """A subscription reached a door that cannot hold it open (a serverless function)."""

    code = ErrorCode.SUBSCRIPTIONS_UNSUPPORTED

    def __init__(self) -> None:
        super().__init__(
            "subscriptions need a long-lived server: a serverless function cannot hold a connection open;"
            " run `gateway serve` somewhere long-lived and subscribe there"
        )


class NeedsStream(GatewayError):
    """A subscription sent as a plain HTTP request, whose one answer cannot carry updates."""

    code = ErrorCode.BAD_REQUEST

    def __init__(self) -> None:
        super().__init__(
            "a subscription needs a stream: open a WebSocket on /graphql (graphql-transport-ws or"
            " graphql-ws), or POST with `Accept: text/event-stream` (graphql-sse)"
        )


class TooManySubscriptions(GatewayError):
    """This instance already runs SUBSCRIPTIONS_MAX subscriptions."""

    code = ErrorCode.TOO_MANY_SUBSCRIPTIONS

    def __init__(self, limit: int) -> None:
        super().__init__(f"this server already runs SUBSCRIPTIONS_MAX={limit} subscriptions; try again later")


class TimedOut(GatewayError):
    """The operation ran longer than REQUEST_TIMEOUT and was cancelled."""

    code = ErrorCode.TIMEOUT

    def __init__(self, seconds: float) -> None:
        super().__init__(f"the operation took longer than REQUEST_TIMEOUT={seconds:g}s and was stopped")


class WriteUnconfirmed(GatewayError):
    """A commit still unconfirmed past REQUEST_TIMEOUT and the database's own limit: it may have landed."""

    code = ErrorCode.TIMEOUT

    def __init__(self) -> None:
        super().__init__(
            "the database did not confirm the write within REQUEST_TIMEOUT and DB_STATEMENT_TIMEOUT;"
            " it may have been saved: read it back before sending it again"
        )
