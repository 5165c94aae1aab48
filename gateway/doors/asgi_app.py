"""The ASGI door for serverless hosts (Vercel): the same executor behind Starlette, opened on first use."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.datastructures import Headers, MutableHeaders, QueryParams
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry.asgi import GraphQL

from gateway.auth.identity import Identity
from gateway.auth.tokens import TokenRejected, sole_authorization
from gateway.doors import cors
from gateway.doors.graphiql import ASSETS_PATH, graphiql_assets
from gateway.doors.graphql_view import ExecutorView, answer_operation, is_json
from gateway.doors.health import readiness
from gateway.doors.observed import CLIENT_GONE, metrics_answer, publishing
from gateway.doors.refusals import MAX_BODY_BYTES, bad_request, invalid_token, too_large, unavailable
from gateway.doors.responses import Answer, media_type, vary_also
from gateway.doors.serverless import serverless_profile
from gateway.errors import GatewayError
from gateway.execution.executor import Executor
from gateway.execution.operation import MalformedRequest, read_json_operation
from gateway.execution.policy import Policy
from gateway.schema import RequestContext
from gateway.settings import Settings
from gateway.telemetry.recorder import REQUEST_ID_HEADER, Telemetry

__all__ = ["create_asgi_app"]


class _GraphQLView(ExecutorView, GraphQL[RequestContext, None]):  # type: ignore[misc]
    """Strawberry's ASGI view; the executor runs what it parses."""

    def identity_of(self, request: Request) -> Identity | None:
        identity: Identity | None = request.scope["state"]["identity"]
        return identity

    def query_names(self, params: QueryParams) -> list[str]:
        return [name for name, _ in params.multi_items()]

    def set_status(self, sub_response: Response, status: int, headers: dict[str, str]) -> None:
        sub_response.status_code = status
        sub_response.headers.update(headers)

    def retyped(self, response: Response, media: str) -> Response:
        if response.headers.get("content-type") == "application/json":
            response.headers["content-type"] = media
        return response

    def respond(self, answer: Answer) -> Response:
        return _respond(answer)


_GRAPHQL_METHODS = ("GET", "POST")


class _GraphQLDoor:
    """/graphql: opens the data source first (a failure is a 503), answers a JSON POST of one operation
    through the executor, and hands anything else to the view."""

    def __init__(self, executor: Executor) -> None:
        self._executor = executor
        graphiql = executor.settings.graphiql_enabled
        self._view = _GraphQLView(executor.schema, graphql_ide="graphiql" if graphiql else None)
        self._view.executor = executor

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        send = _varying_by_accept(send)
        if scope["method"] not in _GRAPHQL_METHODS:
            # As `gateway serve` answers (RFC 9110: a 405 names what is allowed).
            refusal = Response("405: Method Not Allowed", 405, {"Allow": ", ".join(_GRAPHQL_METHODS)})
            await refusal(scope, receive, send)
            return
        accept = _header(scope, b"accept")
        media = media_type(accept)
        try:
            # Each call skipped when it has nothing to do, as the aiohttp door does.
            executor = self._executor
            if executor.data_source is None:
                await executor.open()
            if executor.authenticator is None:
                identity = None
            else:
                authorization = sole_authorization(_headers(scope, b"authorization"))
                identity = await executor.identify(authorization)
        except GatewayError as exc:
            await _respond(unavailable(exc).answer(media))(scope, receive, send)
            return
        except TokenRejected as exc:
            await _respond(invalid_token(exc).answer(media))(scope, receive, send)
            return
        # The view builds its own Request over this scope: the identity travels in its state.
        scope.setdefault("state", {})["identity"] = identity
        try:
            await self._answer(scope, _bounded(receive), send, accept, media, identity)
        except _TooLarge:
            # Raised while the body was read (by this door or the view), so nothing was sent yet.
            await _respond(too_large().answer(media))(scope, receive, send)

    async def _answer(
        self, scope: Scope, receive: Receive, send: Send, accept: str, media: str, identity: Identity | None
    ) -> None:
        if scope["method"] == "POST" and is_json(_header(scope, b"content-type")):
            body = await _read_body(receive)
            try:
                operation = read_json_operation(body, accept)
            except MalformedRequest as exc:
                await _respond(bad_request(exc).answer(media))(scope, receive, send)
                return
            if operation is not None:
                request = Request(scope, receive)
                answer = await answer_operation(self._executor, operation, request, identity, media)
                if answer is not None:
                    await _respond(answer)(scope, receive, send)
                    return
            receive = _replay(body, receive)
        await self._view(scope, receive, send)


def _respond(answer: Answer) -> Response:
    return Response(answer.body, answer.status, dict(answer.headers), answer.media_type)


class _Observed:
    """Outermost: each request's exchange is current while it runs (the app runs in this task),
    every answer carries its X-Request-Id, and its access line is written at the end."""

    def __init__(self, app: ASGIApp, telemetry: Telemetry) -> None:
        self._app = app
        self._telemetry = telemetry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        exchange, handle = self._telemetry.begin(method, path, Headers(scope=scope))
        status = 500

        async def send_observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = exchange.request_id
            await send(message)

        try:
            await self._app(scope, receive, send_observed)
        except asyncio.CancelledError:
            status = CLIENT_GONE
            raise
        finally:
            self._telemetry.end(exchange, handle, method, path, status)


class _Cors:
    """The CORS policy at the door: preflights answered by it alone, its headers and `Vary: Origin`
    on every other answer."""

    def __init__(self, app: ASGIApp, policy: cors.CorsPolicy) -> None:
        self._app = app
        self._policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        request = Headers(scope=scope)
        if cors.is_preflight(scope["method"], request):
            answer = self._policy.preflight(
                request["origin"],
                request["access-control-request-method"],
                request.get("access-control-request-headers", ""),
            )
            await _respond(answer)(scope, receive, send)  # its Vary names Origin
            return
        await self._app(scope, receive, _varying(send, self._policy.allowed_headers(request.get("origin"))))


def _varying(send: Send, extra: dict[str, str]) -> Send:
    """`send` adding `extra` headers and Origin to `Vary` on the answer's start."""

    async def send_varying(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = MutableHeaders(scope=message)
            headers.update(extra)
            headers["vary"] = vary_also(headers.get("vary"), "Origin")
        await send(message)

    return send_varying


def _headers(scope: Scope, name: bytes) -> list[str]:
    return [value.decode("latin-1") for key, value in scope["headers"] if key == name]


def _varying_by_accept(send: Send) -> Send:
    """`send` adding Accept to `Vary`: a /graphql answer's media type and status follow it."""

    async def send_varying(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = MutableHeaders(scope=message)
            headers["vary"] = vary_also(headers.get("vary"), "Accept")
        await send(message)

    return send_varying


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return ""


class _TooLarge(Exception):
    """The request's body is past MAX_BODY_BYTES."""


def _bounded(receive: Receive) -> Receive:
    """`receive` raising _TooLarge once the body passes MAX_BODY_BYTES, as aiohttp's read() does:
    whoever reads it (this door or the view), nothing past the limit is kept."""
    size = 0

    async def bounded() -> Message:
        nonlocal size
        message = await receive()
        if message["type"] == "http.request":
            size += len(message.get("body", b""))
            if size > MAX_BODY_BYTES:
                raise _TooLarge
        return message

    return bounded


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that gives Strawberry the body already read, then the rest of the connection."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def create_asgi_app(settings: Settings, policy: Policy | None = None) -> Starlette:
    """Wire the ASGI app; nothing connects until the first request."""
    executor = Executor(serverless_profile(settings), policy)
    cors_policy = cors.CorsPolicy.from_settings(settings)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        status, body = await readiness(executor)
        return JSONResponse(body, status_code=status)

    async def root(request: Request) -> Response:
        return RedirectResponse("/graphql", status_code=302)

    async def graphiql_asset(request: Request) -> Response:
        build, name = request.path_params["build"], request.path_params["name"]
        return _respond(graphiql_assets().asset(build, name, request.headers.get("if-none-match")))

    async def metrics(request: Request) -> Response:
        status, body, headers = metrics_answer(executor, request.headers.get("authorization"))
        return Response(body, status, headers)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with publishing(executor):
            yield
        await executor.close()

    assets = Route(ASSETS_PATH + "/{build}/{name:path}", graphiql_asset)
    graphiql = [assets] if settings.graphiql_enabled else []
    routes = [
        Route("/graphql", _GraphQLDoor(executor)),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/", root),
        *graphiql,
    ]
    if executor.telemetry.metrics is not None:
        routes.append(Route("/metrics", metrics))
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(_Observed, telemetry=executor.telemetry),  # outermost: every answer is logged
            Middleware(_Cors, policy=cors_policy),
        ],
        lifespan=lifespan,
    )
    # As `gateway serve` answers: /graphql/ is a 404, not a redirect to http://<Host header>/graphql.
    app.router.redirect_slashes = False
    app.state.executor = executor
    app.state.cors = cors_policy
    return app
