"""The same API as an ASGI app, for serverless hosts (Vercel): the pool opens on first request."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send
from strawberry.asgi import GraphQL

from gateway import cors
from gateway.errors import ErrorCode, GatewayError
from gateway.health import readiness
from gateway.lazy_source import LazyDataSource, serverless_profile
from gateway.schema import RequestContext, build_schema
from gateway.settings import Settings

__all__ = ["create_asgi_app"]


class _GraphQLView(GraphQL[RequestContext, None]):
    """Strawberry's ASGI view, with our request context and orjson."""

    def __init__(self, settings: Settings, lazy: LazyDataSource) -> None:
        super().__init__(build_schema(production=settings.production), graphql_ide="graphiql")
        self._settings = settings
        self._lazy = lazy

    async def get_context(self, request: Any, response: Any) -> RequestContext:
        return RequestContext(data_source=await self._lazy.get(), settings=self._settings, request=request)

    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)


class _GraphQLDoor:
    """Opens the data source before Strawberry sees the request; a failure is UNAVAILABLE."""

    def __init__(self, view: _GraphQLView, lazy: LazyDataSource) -> None:
        self._view = view
        self._lazy = lazy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self._lazy.get()
        except GatewayError as exc:
            error = {"message": str(exc), "extensions": {"code": ErrorCode.UNAVAILABLE.value}}
            await JSONResponse({"data": None, "errors": [error]}, status_code=503)(scope, receive, send)
            return
        await self._view(scope, receive, send)


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
