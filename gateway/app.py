"""The aiohttp application: routes, CORS, and the data source's lifecycle."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp_cors
import orjson
from aiohttp import web
from strawberry.aiohttp.views import GraphQLView

from gateway import cors
from gateway.app_keys import DATA_SOURCE, SETTINGS
from gateway.datasources import create_data_source
from gateway.health import readiness
from gateway.schema import RequestContext, build_schema
from gateway.settings import Settings

__all__ = ["create_app"]

log = logging.getLogger(__name__)


class GatewayView(GraphQLView[RequestContext, None]):
    """Strawberry's aiohttp view, with our request context and orjson."""

    async def get_context(self, request: web.Request, response: Any) -> RequestContext:
        return RequestContext(
            data_source=request.app[DATA_SOURCE],
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


def create_app(settings: Settings) -> web.Application:
    """Wire the application; the data source opens when the app starts, not here."""
    app = web.Application()
    app[SETTINGS] = settings
    app.cleanup_ctx.append(_data_source_ctx)

    view = GatewayView(schema=build_schema(production=settings.production), graphql_ide="graphiql")
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
    cors_config.add(graphql.add_route("POST", view))
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/", _root)
    return app
