"""Live updates on the aiohttp door: GraphQL over WebSocket (`graphql-transport-ws` and the legacy
`graphql-ws`) and over Server-Sent Events, every operation run by the executor.

Strawberry's protocol handlers keep what is theirs (messages, acknowledgements, pings, ids); where
they would run an operation on the schema, they get `ExecutorStreams` instead, so a socket's
operations pass the same identity, policy and limits as a POST. The connection's identity is the
bearer token in the `connection_init` payload (`Authorization` or `authorization`), else the
handshake's Authorization header; an invalid token closes the socket (4403) before any operation.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from json import JSONDecodeError
from typing import Any, cast

from aiohttp import ClientConnectionResetError, WSMsgType, hdrs, web
from graphql import GraphQLError
from strawberry.aiohttp.views import AiohttpWebSocketAdapter
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http.exceptions import (
    NonJsonMessageReceived,
    NonTextMessageReceived,
    WebSocketDisconnected,
)
from strawberry.http.websocket_origin import is_same_origin
from strawberry.schema import BaseSchema
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import BaseGraphQLTransportWSHandler
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.types import ExecutionResult
from strawberry.types.execution import PreExecutionError

from gateway.auth.identity import Identity
from gateway.auth.tokens import TokenRejected, sole_authorization
from gateway.doors.cors import CorsPolicy
from gateway.doors.refusals import invalid_token
from gateway.errors import ErrorCode, GatewayError
from gateway.execution.executor import Executor
from gateway.execution.operation import MalformedRequest, Operation
from gateway.execution.outcome import encode

__all__ = [
    "GOING_AWAY",
    "SLOW_CONSUMER",
    "TOKEN_EXPIRED",
    "TOO_MANY_INITS",
    "LegacyWsHandler",
    "LiveConnections",
    "SocketContext",
    "TextSocket",
    "TransportWsHandler",
    "is_live",
    "is_socket",
    "malformed",
    "origin_allowed",
]

log = logging.getLogger(__name__)

GOING_AWAY = 1001  # RFC 6455: the server is shutting down
SLOW_CONSUMER = 1013  # RFC 6455 "try again later": the client read too slowly and was disconnected
TOKEN_EXPIRED = 4403  # graphql-transport-ws's Forbidden: reconnect with a fresh token
TOO_MANY_INITS = 4429  # graphql-transport-ws's close for a second connection_init; the legacy protocol's too
_CLOSE_WAIT = 2.0  # seconds a close frame may wait behind unread data before the connection is closed
_SLOW_LINGER = 30.0  # seconds a slow client then has to read what was queued, before it is cut
_SHUTDOWN_LINGER = 5.0  # the same on shutdown
_DRAIN_WAIT = 10.0  # seconds a shutdown waits for updates already taken from the feed to be sent


def is_socket(request: web.BaseRequest) -> bool:
    """A WebSocket handshake."""
    return request.headers.get(hdrs.UPGRADE, "").lower() == "websocket"


def is_live(request: web.BaseRequest) -> bool:
    """A WebSocket handshake, or a request for an event stream."""
    return is_socket(request) or "text/event-stream" in request.headers.get(hdrs.ACCEPT, "").lower()


def origin_allowed(headers: Mapping[str, str], cors: CorsPolicy) -> bool:
    """Whether a browser page on the request's Origin may open a socket or event stream.

    No Origin (not a browser) and the server's own origin pass, as Strawberry's handshake check
    lets them; others must match CORS_ORIGINS.
    """
    origin = headers.get(hdrs.ORIGIN)
    if origin is None or is_same_origin(origin, headers.get(hdrs.HOST)):
        return True
    return cors.origin_allowed(origin)


class LiveConnections:
    """The open sockets and event streams of this process, closed with 1001 on shutdown."""

    def __init__(self) -> None:
        # By id(): a request is a mutable mapping, so not hashable.
        self._open: dict[int, tuple[web.Request, web.StreamResponse]] = {}
        self._streams: dict[int, asyncio.Future[None]] = {}  # an event stream's copying of its updates
        self._expiries: dict[int, asyncio.TimerHandle] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self.stopping = False

    def __len__(self) -> int:
        return len(self._open)

    def add(
        self, request: web.Request, response: web.StreamResponse, copying: asyncio.Future[None] | None = None
    ) -> None:
        """A socket, or an event stream with the task `copying` its updates into the response."""
        self._open[id(request)] = (request, response)
        if copying is not None:
            self._streams[id(request)] = copying

    def discard(self, request: web.Request) -> None:
        self._open.pop(id(request), None)
        self._streams.pop(id(request), None)
        expiry = self._expiries.pop(id(request), None)
        if expiry is not None:
            expiry.cancel()

    def expire(self, request: web.Request, identity: Identity | None) -> None:
        """Close the connection of `request` when the token it signed in with expires: a subscriber
        receives only what it could query, and with an expired token it could not."""
        if identity is None or identity.expires_at is None:
            return
        delay = max(0.0, identity.expires_at - time.time())
        self._expiries[id(request)] = asyncio.get_running_loop().call_later(delay, self._expired, request)

    def _expired(self, request: web.Request) -> None:
        self._expiries.pop(id(request), None)
        found = self._open.get(id(request))
        if found is not None:
            log.info("closing a live connection from %s: its token expired", request.remote)
            self._start(_close(found[1], request, TOKEN_EXPIRED, "token expired", _SHUTDOWN_LINGER))

    def slow(self, request: web.Request) -> Callable[[], None]:
        """What a subscription of `request` calls when it falls too far behind: close its connection."""

        def close() -> None:
            found = self._open.get(id(request))
            if found is not None:
                response = found[1]
                log.warning("closing a live connection from %s: it reads too slowly", request.remote)
                self._start(_close(response, request, SLOW_CONSUMER, "slow consumer", _SLOW_LINGER))

        return close

    async def shut_down(self, executor: Executor) -> None:
        """Stop the feed, wait (bounded) for updates already taken to be sent, close every connection."""
        self.stopping = True
        if executor.feed is not None:
            await executor.feed.close()
            with suppress(TimeoutError):
                async with asyncio.timeout(_DRAIN_WAIT):
                    while not executor.drained():
                        await asyncio.sleep(0.02)
        for request, response in list(self._open.values()):
            copying = self._streams.get(id(request))
            if copying is not None:
                self._start(self._end_stream(request, response, copying))
            else:
                self._start(_close(response, request, GOING_AWAY, "server shutting down", _SHUTDOWN_LINGER))
        if self._closing:
            await asyncio.wait(list(self._closing))

    async def _end_stream(
        self, request: web.Request, response: web.StreamResponse, copying: asyncio.Future[None]
    ) -> None:
        """End an event stream as a complete response (its view writes the end), or cut it if that
        cannot be sent within _CLOSE_WAIT (a client that reads nothing)."""
        copying.cancel()
        with suppress(TimeoutError):
            async with asyncio.timeout(_CLOSE_WAIT):
                while id(request) in self._open:
                    await asyncio.sleep(0.02)
                return
        await _close(response, request, GOING_AWAY, "server shutting down", _SHUTDOWN_LINGER)

    def _start(self, closing: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(closing)
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)


async def _close(
    response: web.StreamResponse, request: web.Request, code: int, reason: str, linger: float
) -> None:
    """Close a socket with `code` (an event stream has none: it just ends).

    A client that reads nothing leaves the close frame queued behind unread data: after _CLOSE_WAIT the
    connection is closed anyway, its queued bytes (the close frame last) still sent as it reads, and cut
    after `linger` more seconds if it reads none of them. Memory stays what was queued.
    """
    if isinstance(response, web.WebSocketResponse):
        with suppress(TimeoutError, ConnectionError):
            async with asyncio.timeout(_CLOSE_WAIT):
                await response.close(code=code, message=reason.encode())
                return
    transport = request.transport
    if transport is None or transport.is_closing():
        return
    transport.close()
    with suppress(TimeoutError):
        async with asyncio.timeout(linger):
            while request.transport is not None:
                await asyncio.sleep(0.1)
    if request.transport is not None:
        request.transport.abort()


class TextSocket(AiohttpWebSocketAdapter):
    """Strawberry's aiohttp socket adapter, sending text frames: the protocols require them, and the
    view's JSON encoder gives bytes, which the adapter would send as binary frames."""

    async def iter_json(self, *, ignore_parsing_errors: bool = False) -> AsyncGenerator[object, None]:
        # The view's reader also refuses JSON no encoder can use (a lone surrogate, nesting too deep
        # for a parser's stack) with MalformedRequest, which the view answers as HTTP: written into an
        # upgraded socket, a 400's bytes reached the client as a corrupt frame. On a socket it is
        # a message that is not JSON, which each protocol answers its own way.
        async for message in self.ws:
            if message.type == WSMsgType.TEXT:
                try:
                    yield self.view.decode_json(message.data)
                except (JSONDecodeError, MalformedRequest) as exc:
                    if not ignore_parsing_errors:
                        raise NonJsonMessageReceived from exc
            elif message.type == WSMsgType.BINARY:
                raise NonTextMessageReceived

    async def send_json(self, message: Mapping[str, object]) -> None:
        try:
            await self.ws.send_str(encode(message).decode())
        except (RuntimeError, ClientConnectionResetError) as exc:
            raise WebSocketDisconnected from exc


@dataclass
class SocketContext:
    """What Strawberry's handlers keep for one socket: the request, and who the connection is."""

    executor: Executor
    request: web.Request
    on_slow: Callable[[], None]
    connection_params: dict[str, object] | None = None
    identity: Identity | None = field(default=None)

    async def sign_in(self) -> None:
        """Identify the connection from its `connection_init` payload; ConnectionRejectionError if refused."""
        params = self.connection_params or {}
        token = params.get("Authorization", params.get("authorization"))
        if not (token is None or isinstance(token, str)):
            raise self._rejected("UNAUTHENTICATED", "connection_init: `Authorization` must be a string")
        try:
            if token is None:
                token = sole_authorization(self.request.headers.getall(hdrs.AUTHORIZATION, ()))
            self.identity = await self.executor.identify(token)
        except TokenRejected as exc:
            # As at the HTTP door: the reason is the server log's (it names AUTH_ISSUER, AUTH_AUDIENCE).
            refusal = invalid_token(exc)
            raise self._rejected(refusal.code.value, refusal.message) from exc
        except GatewayError as exc:
            raise self._rejected(exc.code.value, str(exc)) from exc

    def _rejected(self, code: str, message: str) -> ConnectionRejectionError:
        return ConnectionRejectionError(self.refused(GraphQLError(message, extensions={"code": code})))

    def refused(self, error: GraphQLError) -> dict[str, Any]:
        """`error`, answered by the socket itself (a connection or operation refused): counted, formatted."""
        self.executor.telemetry.answered([error])
        return dict(error.formatted)


class ExecutorStreams:
    """Stands where Strawberry's handlers expect the schema: the executor runs each operation they start."""

    def __init__(self, context: SocketContext) -> None:
        self._context = context

    async def stream(
        self,
        query: Any,
        variable_values: Any = None,
        context_value: Any = None,
        root_value: Any = None,
        operation_name: Any = None,
        operation_extensions: Any = None,
        allowed_operation_types: Any = None,
    ) -> AsyncIterator[ExecutionResult]:
        return self._results(query, variable_values, operation_name)

    subscribe = stream  # the legacy protocol's name; queries and mutations are answered there too

    async def _results(self, query: Any, variables: Any, name: Any) -> AsyncIterator[ExecutionResult]:
        if not (
            isinstance(query, str) and isinstance(variables, dict | None) and isinstance(name, str | None)
        ):
            problem = "`query` must be a string, `variables` an object and `operationName` a string"
            error = GraphQLError(problem, extensions={"code": "BAD_REQUEST"})
            self._context.executor.telemetry.answered([error])
            yield PreExecutionError(data=None, errors=[error])
            return
        context = self._context
        results = context.executor.stream(
            Operation(query, name, variables), context.request, context.identity, context.on_slow
        )
        # What did not run comes as a PreExecutionError, which the protocols answer with `error`;
        # an update is `next` even when its fields failed and left `data` None.
        async for result in results:
            yield result


def malformed(message: object) -> str | None:
    """What is wrong with a socket message's shape, or None. Strawberry's handlers index a message
    as they find it: a list, an object as `id` or a string as `payload` raised in them (a traceback,
    and the socket dropped without a close code)."""
    if not isinstance(message, dict):
        return "a message must be a JSON object"
    if not isinstance(message.get("type"), str):
        return "a message's `type` must be a string"
    if "id" in message and not isinstance(message["id"], str):
        return "a message's `id` must be a string"
    if message["type"] in ("subscribe", "start") and not isinstance(message.get("payload"), dict):
        return f"a `{message['type']}` message's `payload` must be an object"
    if message["type"] in ("start", "stop") and "id" not in message:
        return f"a `{message['type']}` message needs an `id`"
    return None


def _over_limit(context: SocketContext, running: int) -> GraphQLError | None:
    """The coded error refusing one more operation on a socket already running `running`, or None."""
    limit = context.executor.settings.subscriptions_per_connection
    if running < limit:
        return None
    message = (
        f"this connection already runs SUBSCRIPTIONS_PER_CONNECTION={limit} operations; complete one first"
    )
    return GraphQLError(message, extensions={"code": ErrorCode.TOO_MANY_SUBSCRIPTIONS.value})


class TransportWsHandler(BaseGraphQLTransportWSHandler[Any, None]):
    """`graphql-transport-ws` (the graphql-ws library's protocol)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.schema = cast(BaseSchema, ExecutorStreams(self.context))

    async def handle_subscribe(self, message: Any) -> None:
        # Strawberry's own limit answers without a code; it first closes for a missing init or a
        # duplicate id, which stays its own.
        if self.connection_acknowledged and message["id"] not in self.operations:
            refusal = _over_limit(self.context, len(self.operations))
            if refusal is not None:
                error = {"id": message["id"], "type": "error", "payload": [self.context.refused(refusal)]}
                await self.send_message(cast(Any, error))
                return
        await super().handle_subscribe(message)

    async def handle_message(self, message: Any) -> None:
        problem = malformed(message)
        if problem is not None:
            await self.handle_invalid_message(problem)  # the protocol's close: 4400 with the reason
            return
        await super().handle_message(message)


class LegacyWsHandler(BaseGraphQLWSHandler[Any, None]):
    """The legacy `graphql-ws` (subscriptions-transport-ws) protocol."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.schema = cast(BaseSchema, ExecutorStreams(self.context))
        self._init_received = False

    async def handle_connection_init(self, message: Any) -> None:
        # Strawberry's handler signs in again at each one and starts another keep-alive task, of
        # which only the last is stopped at close: refused as graphql-transport-ws refuses it.
        if self._init_received:
            await self.websocket.close(code=TOO_MANY_INITS, reason="Too many initialisation requests")
            return
        self._init_received = True
        await super().handle_connection_init(message)

    async def handle_message(self, message: Any) -> None:
        problem = malformed(message)
        if problem is not None:
            # subscriptions-transport-ws answers a message it cannot use with an `error`, and reads on.
            error: dict[str, Any] = {"type": "error", "payload": {"message": problem}}
            if isinstance(message, dict) and isinstance(message.get("id"), str):
                error["id"] = message["id"]
            await self.send_message(cast(Any, error))
            return
        await super().handle_message(message)

    async def handle_start(self, message: Any) -> None:
        # A start reusing a running id replaces that operation, so it does not add one.
        if self.connection_acknowledged and message["id"] not in self.tasks:
            refusal = _over_limit(self.context, len(self.tasks))
            if refusal is not None:
                error = {"type": "error", "id": message["id"], "payload": self.context.refused(refusal)}
                await self.send_message(cast(Any, error))
                return
        await super().handle_start(message)
