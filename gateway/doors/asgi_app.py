"""The same API as an ASGI app, for serverless hosts (Vercel): the pool opens on first request."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send
from strawberry.asgi import GraphQL

from gateway.datasources.protocol import DataSource
from gateway.doors import cors
from gateway.doors.health import readiness
from gateway.doors.lazy_source import LazyDataSource, serverless_profile
from gateway.errors import ErrorCode, GatewayError
from gateway.execution import executor as json_post
from gateway.execution.fastpath import FastPath, fast_path_for
from gateway.schema import RequestContext, build_schema
from gateway.settings import Settings

__all__ = ["create_asgi_app"]


class _GraphQLView(GraphQL[RequestContext, None]):
    """Strawberry's ASGI view, with our request context and encoder."""

    def __init__(self, settings: Settings, lazy: LazyDataSource) -> None:
        self.gateway_schema = build_schema(production=settings.production)
        super().__init__(self.gateway_schema, graphql_ide="graphiql")
        self.settings = settings
        self._lazy = lazy

    def context(self, request: Any, source: DataSource) -> RequestContext:
        return RequestContext(data_source=source, settings=self.settings, request=request)

    async def get_context(self, request: Any, response: Any) -> RequestContext:
        return self.context(request, await self._lazy.get())

    def encode_json(self, data: object) -> bytes:
        return json_post.encode(data)


class _GraphQLDoor:
    """Opens the data source before Strawberry sees the request (a failure is UNAVAILABLE); a POST
    of one operation in JSON is answered by `json_post`, as `gateway serve` does."""

    def __init__(self, view: _GraphQLView, lazy: LazyDataSource) -> None:
        self._view = view
        self._lazy = lazy
        self._fast: FastPath | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            source = await self._lazy.get()
        except GatewayError as exc:
            error = {"message": str(exc), "extensions": {"code": ErrorCode.UNAVAILABLE.value}}
            await JSONResponse({"data": None, "errors": [error]}, status_code=503)(scope, receive, send)
            return
        if self._fast is None:
            self._fast = fast_path_for(self._view.gateway_schema._schema, self._view.settings, source)
        media_type = _header(scope, b"content-type").split(";")[0].strip().lower()
        if scope["method"] == "POST" and media_type == "application/json":
            body = await _read_body(receive)
            operation = json_post.read_operation(body, _header(scope, b"accept"))
            if operation is not None:
                request = Request(scope, receive)
                answer = await json_post.answer(
                    self._view.gateway_schema,
                    self._fast,
                    source,
                    operation,
                    lambda found: self._view.context(request, found),
                )
                if answer is not None:
                    await Response(answer, media_type="application/json")(scope, receive, send)
                    return
            receive = _replay(body, receive)
        await self._view(scope, receive, send)


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return ""


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


def create_asgi_app(settings: Settings) -> Starlette:
    """Wire the ASGI app; nothing connects until the first request."""
    settings = serverless_profile(settings)
    lazy = LazyDataSource(settings)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        try:
            source = await lazy.get()
        except GatewayError as exc:
            return JSONResponse({"status": "unavailable", "reason": str(exc)}, status_code=503)
        status, body = await readiness(source)
        return JSONResponse(body, status_code=status)

    async def root(request: Request) -> Response:
        return RedirectResponse("/graphql", status_code=302)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await lazy.close()

    app = Starlette(
        routes=[
            Route("/graphql", _GraphQLDoor(_GraphQLView(settings, lazy), lazy)),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/", root),
        ],
        middleware=[
            Middleware(
                CORSMiddleware,
                allow_origins=settings.cors_origins,
                allow_methods=cors.ALLOWED_METHODS,
                allow_headers=cors.ALLOWED_HEADERS,
                allow_credentials=cors.ALLOW_CREDENTIALS,
                max_age=cors.MAX_AGE,
            )
        ],
        lifespan=lifespan,
    )
    app.state.data_source = lazy
    return app
