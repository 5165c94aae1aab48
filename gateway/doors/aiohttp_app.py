"""The aiohttp door (`gateway serve`): routes, CORS, and the executor's lifecycle."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from aiohttp import hdrs, web
from aiohttp.http_exceptions import HttpProcessingError
from strawberry.aiohttp.views import GraphQLView
from strawberry.subscriptions import GRAPHQL_SSE_PROTOCOL, GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL
from strawberry.types.unset import UNSET, UnsetType

from gateway.auth.identity import Identity
from gateway.auth.tokens import TokenRejected, sole_authorization
from gateway.doors import cors
from gateway.doors.app_keys import CORS, EXECUTOR, LIVE, SETTINGS
from gateway.doors.front import fallbacks, front, respond, stamp
from gateway.doors.graphiql import ASSETS_PATH, graphiql_assets
from gateway.doors.graphql_view import ExecutorView, answer_operation, is_json
from gateway.doors.health import readiness
from gateway.doors.live import (
    LegacyWsHandler,
    LiveConnections,
    SocketContext,
    TextSocket,
    TransportWsHandler,
    is_live,
    is_socket,
    origin_allowed,
)
from gateway.doors.observed import metrics_answer, publishing
from gateway.doors.refusals import MAX_BODY_BYTES, bad_request, invalid_token, unavailable
from gateway.doors.responses import GRAPHQL_VARY, Answer, media_type
from gateway.errors import GatewayError
from gateway.execution.executor import Executor
from gateway.execution.operation import MalformedRequest, read_json_operation
from gateway.execution.policy import Policy
from gateway.settings import Settings
from gateway.telemetry.exchange import CURRENT

__all__ = ["GatewayView", "create_app"]


IDENTITY = web.RequestKey("identity", Identity)  # absent for an anonymous request
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# The context is a RequestContext for HTTP, a SocketContext for a socket: typed Any.
class GatewayView(ExecutorView, GraphQLView[Any, None]):  # type: ignore[misc]
    """Strawberry's aiohttp view; the executor runs what it parses, sockets' operations included."""

    graphql_transport_ws_handler_class = TransportWsHandler
    graphql_ws_handler_class = LegacyWsHandler
    websocket_adapter_class = TextSocket  # type: ignore[assignment]
    live: LiveConnections
    settings: Settings
    cors_policy: cors.CorsPolicy

    def is_websocket_origin_allowed(self, request: web.Request, origin: str) -> bool:
        # Strawberry lets a handshake without Origin, or from the server's own origin, through first.
        return self.cors_policy.origin_allowed(origin)

    def identity_of(self, request: web.Request) -> Identity | None:
        return request.get(IDENTITY)

    def on_slow(self, request: web.Request) -> Callable[[], None]:
        return self.live.slow(request)

    async def run(self, request: web.Request, context: Any = UNSET, root_value: Any = UNSET) -> Any:
        try:
            return await super().run(request, context, root_value)
        finally:
            self.live.discard(request)

    async def get_context(self, request: web.Request, response: web.StreamResponse) -> Any:
        if isinstance(response, web.WebSocketResponse):
            self.live.add(request, response)
            return SocketContext(self.executor, request, self.live.slow(request))
        return await super().get_context(request, response)

    async def on_ws_connect(self, context: SocketContext) -> UnsetType:
        await context.sign_in()
        self.live.expire(context.request, context.identity)
        return UNSET

    async def create_websocket_response(
        self, request: web.Request, subprotocol: str | None
    ) -> web.WebSocketResponse:
        # Protocol-level pings: a peer that stops answering is closed, whatever the subprotocol.
        ws = web.WebSocketResponse(
            protocols=[subprotocol] if subprotocol else [], heartbeat=self.settings.live_keepalive
        )
        self._stamp(request, ws)
        await ws.prepare(request)
        return ws

    async def create_streaming_response(
        self,
        request: web.Request,
        stream: Callable[[], AsyncGenerator[str, None]],
        sub_response: web.Response,
        headers: Mapping[str, str],
    ) -> web.StreamResponse:
        response = web.StreamResponse(status=sub_response.status, headers={**sub_response.headers, **headers})
        self._stamp(request, response)
        await response.prepare(request)

        async def copy() -> None:
            async for chunk in stream():
                await response.write(chunk.encode())

        # Its own task, so that a shutdown can stop the updates and still end the response cleanly.
        copying = asyncio.ensure_future(copy())
        self.live.add(request, response, copying)
        try:
            try:
                await copying
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if not copying.cancelled() or (task is not None and task.cancelling()):
                    raise  # the request itself was cancelled
            await response.write_eof()
        except ConnectionError:
            pass  # the client went away, or was cut for reading too slowly
        finally:
            copying.cancel()
        return response

    def _stamp(self, request: web.Request, response: web.StreamResponse) -> None:
        """A socket's handshake or a stream's headers, sent from here: what every answer carries."""
        exchange = CURRENT.get()
        request_id = exchange.request_id if exchange is not None else None
        stamp(response.headers, self.cors_policy, request.headers.get(hdrs.ORIGIN), request_id, GRAPHQL_VARY)

    def query_names(self, params: Any) -> list[str]:
        return [name for name, _ in params.items()]  # a MultiDict's items: every pair given

    def set_status(self, sub_response: web.Response, status: int, headers: dict[str, str]) -> None:
        sub_response.set_status(status)
        sub_response.headers.update(headers)

    def retyped(self, response: web.StreamResponse, media: str) -> web.StreamResponse:
        if response.content_type == "application/json":
            response.content_type = media
        return response

    def respond(self, answer: Answer) -> web.Response:
        return respond(answer)


# Where aiohttp's message begins to quote the request: "Got more than 8190 bytes when reading: b'…",
# "Invalid header token:\n\n  b'…'\n  ^", "Bad status line '…'".
_QUOTED_REQUEST = re.compile(r":|\s*b?['\"]")


class _OneLineBadHttp(logging.Filter):
    """aiohttp logs a request it cannot parse (a URL or header over 8 KB, bad syntax) with a
    traceback and the request's first bytes; the client sent nonsense and got its 400: one line
    with the reason says enough, and those bytes may be a query string, a token or a cookie."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError) and exc.code < 500:
            reason = _QUOTED_REQUEST.split(exc.message, maxsplit=1)[0].strip()
            record.msg, record.args = "%s: %s (the request is not logged)", (record.getMessage(), reason)
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def _log_bad_http_on_one_line() -> None:
    server_log = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, _OneLineBadHttp) for f in server_log.filters):
        server_log.addFilter(_OneLineBadHttp())


async def _executor_ctx(app: web.Application) -> AsyncIterator[None]:
    await app[EXECUTOR].open()
    async with publishing(app[EXECUTOR]):
        yield
    await app[EXECUTOR].close()


async def _close_live_connections(app: web.Application) -> None:
    """On SIGTERM: sockets close with 1001 once the updates already under way are sent."""
    await app[LIVE].shut_down(app[EXECUTOR])


async def _metrics(request: web.Request) -> web.Response:
    status, body, headers = metrics_answer(request.app[EXECUTOR], request.headers.get(hdrs.AUTHORIZATION))
    return web.Response(body=body, status=status, headers=headers)


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _readyz(request: web.Request) -> web.Response:
    status, body = await readiness(request.app[EXECUTOR])
    return web.json_response(body, status=status)


async def _root(request: web.Request) -> web.Response:
    raise web.HTTPFound("/graphql")


async def _graphiql_asset(request: web.Request) -> web.Response:
    build, name = request.match_info["build"], request.match_info["name"]
    return respond(graphiql_assets().asset(build, name, request.headers.get(hdrs.IF_NONE_MATCH)))


async def _no_server_header(request: web.Request, response: web.StreamResponse) -> None:
    """No answer names the server's software: aiohttp adds `Server` as it sends the headers."""
    response.headers.popall(hdrs.SERVER, None)


def _graphql(view: GatewayView) -> Handler:
    """/graphql: a JSON POST of one operation is answered here, anything else by the view."""
    executor = view.executor

    async def handle(request: web.Request) -> web.StreamResponse:
        accept = request.headers.get(hdrs.ACCEPT, "")
        media = media_type(accept)
        if is_live(request):
            if not origin_allowed(request.headers, view.cors_policy):
                # Browsers apply no CORS to a WebSocket handshake, nor read-protection to a stream's effects.
                origin = cors.quoted(request.headers[hdrs.ORIGIN])
                return web.Response(status=403, text=f"origin {origin} is not in CORS_ORIGINS")
            if view.live.stopping:
                return web.Response(status=503, text="shutting down", headers={"Retry-After": "1"})
        try:
            # Each call skipped when it has nothing to do: a coroutine costs a point lookup ~0.4%.
            if executor.data_source is None:
                await executor.open()
            if executor.authenticator is None or is_socket(request):
                identity = None  # a socket signs in with connection_init, whose token wins over the header
            else:
                authorization = sole_authorization(request.headers.getall(hdrs.AUTHORIZATION, ()))
                identity = await executor.identify(authorization)
        except GatewayError as exc:
            return respond(unavailable(exc).answer(media))
        except TokenRejected as exc:
            return respond(invalid_token(exc).answer(media))
        if identity is not None:
            request[IDENTITY] = identity
        if request.method == "POST" and is_json(request.headers.get(hdrs.CONTENT_TYPE, "")):
            # The view reads the body again if needed: aiohttp keeps it.
            try:
                operation = read_json_operation(await request.read(), accept)
            except MalformedRequest as exc:
                return respond(bad_request(exc).answer(media))
            if operation is not None:
                answer = await answer_operation(executor, operation, request, identity, media)
                if answer is not None:
                    return respond(answer)
        return await view(request)

    return handle


def create_app(settings: Settings, policy: Policy | None = None) -> web.Application:
    """Wire the application; the data source opens when the app starts, not here."""
    executor = Executor(settings, policy, live=True)
    cors_policy = cors.CorsPolicy.from_settings(settings)
    app = web.Application(client_max_size=MAX_BODY_BYTES)  # `front` answers a larger body
    door = front(executor.telemetry, cors_policy, settings.request_timeout)
    app[SETTINGS] = settings
    app[CORS] = cors_policy
    app[EXECUTOR] = executor
    app[LIVE] = LiveConnections()
    app.cleanup_ctx.append(_executor_ctx)
    app.on_shutdown.append(_close_live_connections)
    app.on_response_prepare.append(_no_server_header)
    _log_bad_http_on_one_line()

    view = GatewayView(
        schema=executor.schema,
        graphql_ide="graphiql" if settings.graphiql_enabled else None,
        keep_alive=True,  # the legacy protocol's `ka` messages
        keep_alive_interval=settings.live_keepalive,
        subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL, GRAPHQL_SSE_PROTOCOL),
    )
    view.executor = executor
    view.live = app[LIVE]
    view.settings = settings
    view.cors_policy = app[CORS]
    graphql = app.router.add_resource("/graphql")
    handle = door(_graphql(view), GRAPHQL_VARY)
    graphql.add_route("GET", handle)
    graphql.add_route("POST", handle)
    app.router.add_get("/healthz", door(_healthz))
    app.router.add_get("/readyz", door(_readyz))
    app.router.add_get("/", door(_root))
    if settings.graphiql_enabled:
        app.router.add_get(ASSETS_PATH + "/{build}/{name:.+}", door(_graphiql_asset))
    if executor.telemetry.metrics is not None:
        app.router.add_get("/metrics", door(_metrics))
    fallbacks(app.router, door)
    return app
