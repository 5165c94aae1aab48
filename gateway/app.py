"""The aiohttp application: routes, CORS, and the data source's lifecycle."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp_cors
import orjson
from aiohttp import web
from strawberry.aiohttp.views import GraphQLView

from gateway import cors
from gateway.app_keys import DATA_SOURCE, FAST_PATH, SCHEMA, SETTINGS, UNAVAILABLE
from gateway.datasources import create_data_source
from gateway.datasources.base import DataSourceUnavailable
from gateway.datasources.unavailable import for_request
from gateway.fastpath import fast_path_for
from gateway.health import readiness
from gateway.schema import RequestContext, build_schema
from gateway.settings import Settings

__all__ = ["create_app"]

log = logging.getLogger(__name__)


class GatewayView(GraphQLView[RequestContext, None]):
    """Strawberry's aiohttp view, with our request context and orjson."""

    async def get_context(self, request: web.Request, response: Any) -> RequestContext:
        return RequestContext(
            data_source=for_request(request.app[DATA_SOURCE], request.get(UNAVAILABLE)),
            settings=request.app[SETTINGS],
            request=request,
        )

    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)


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
    """POST /graphql: the compiled fast path when it can answer, else Strawberry's view."""

    async def handle(request: web.Request) -> web.StreamResponse:
        fast = request.app.get(FAST_PATH)
        if fast is not None and request.content_type == "application/json":
            # The view reads the body again if needed: aiohttp keeps it.
            try:
                body = await fast.answer(request.app[DATA_SOURCE], await request.read())
            except DataSourceUnavailable as exc:
                request[UNAVAILABLE] = exc
            else:
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
