"""The aiohttp application: routes, CORS, and the data source's lifecycle."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp_cors
from aiohttp import web
from strawberry.aiohttp.views import GraphQLView

from gateway.datasources import create_data_source
from gateway.datasources.protocol import DataSource
from gateway.doors import cors
from gateway.doors.app_keys import DATA_SOURCE, FAST_PATH, SCHEMA, SETTINGS
from gateway.doors.health import readiness
from gateway.execution import executor as json_post
from gateway.execution.fastpath import fast_path_for
from gateway.schema import RequestContext, build_schema
from gateway.settings import Settings

__all__ = ["create_app"]

log = logging.getLogger(__name__)


def _context(request: web.Request, source: DataSource) -> RequestContext:
    return RequestContext(data_source=source, settings=request.app[SETTINGS], request=request)


class GatewayView(GraphQLView[RequestContext, None]):
    """Strawberry's aiohttp view, with our request context and encoder."""

    async def get_context(self, request: web.Request, response: Any) -> RequestContext:
        return _context(request, request.app[DATA_SOURCE])

    def encode_json(self, data: object) -> bytes:
        return json_post.encode(data)


async def _data_source_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    source = create_data_source(settings)
    await source.open()
    app[DATA_SOURCE] = source
    fast = fast_path_for(app[SCHEMA]._schema, settings, source)
    if fast is not None:
        app[FAST_PATH] = fast
    log.info("data source %s open", settings.db_backend)
    yield
    await source.close()
    log.info("data source %s closed", settings.db_backend)


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _readyz(request: web.Request) -> web.Response:
    status, body = await readiness(request.app.get(DATA_SOURCE))
    return web.json_response(body, status=status)


async def _root(request: web.Request) -> web.Response:
    raise web.HTTPFound("/graphql")


def _graphql_post(view: GatewayView) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """POST /graphql: one operation in JSON is answered by `json_post`, anything else by the view."""

    async def handle(request: web.Request) -> web.StreamResponse:
        if request.content_type == "application/json":
            # The view reads the body again if needed: aiohttp keeps it.
            operation = json_post.read_operation(await request.read(), request.headers.get("Accept", ""))
            if operation is not None:
                body = await json_post.answer(
                    request.app[SCHEMA],
                    request.app.get(FAST_PATH),
                    request.app[DATA_SOURCE],
                    operation,
                    lambda source: _context(request, source),
                )
                if body is not None:
                    return web.Response(body=body, content_type="application/json")
        return await view(request)

    return handle


def create_app(settings: Settings) -> web.Application:
    """Wire the application; the data source opens when the app starts, not here."""
    app = web.Application()
    app[SETTINGS] = settings
    schema = build_schema(production=settings.production)
    app[SCHEMA] = schema
    app.cleanup_ctx.append(_data_source_ctx)

    view = GatewayView(schema=schema, graphql_ide="graphiql")
    cors_config = aiohttp_cors.setup(
        app,
        defaults={
            origin: aiohttp_cors.ResourceOptions(
                allow_credentials=cors.ALLOW_CREDENTIALS,
                allow_headers=cors.ALLOWED_HEADERS,
                allow_methods=cors.ALLOWED_METHODS,
                max_age=cors.MAX_AGE,
            )
            for origin in settings.cors_origins
        },
    )
    graphql = app.router.add_resource("/graphql")
    cors_config.add(graphql.add_route("GET", view))
    cors_config.add(graphql.add_route("POST", _graphql_post(view)))
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/", _root)
    return app
