"""The aiohttp door (`gateway serve`): routes, CORS, and the executor's lifecycle."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp_cors
from aiohttp import web
from strawberry.aiohttp.views import GraphQLView

from gateway.auth.identity import Identity
from gateway.auth.tokens import TokenRejected
from gateway.doors import cors
from gateway.doors.app_keys import EXECUTOR, SETTINGS
from gateway.doors.deadline import deadline
from gateway.doors.graphql_view import ExecutorView
from gateway.doors.health import readiness
from gateway.doors.refusals import Refusal, invalid_token, unavailable
from gateway.errors import GatewayError
from gateway.execution.executor import Executor
from gateway.execution.operation import read_json_operation
from gateway.execution.policy import Policy
from gateway.schema import RequestContext
from gateway.settings import Settings

__all__ = ["GatewayView", "create_app"]


IDENTITY = web.RequestKey("identity", Identity)  # absent for an anonymous request


class GatewayView(ExecutorView, GraphQLView[RequestContext, None]):  # type: ignore[misc]
    """Strawberry's aiohttp view; the executor runs what it parses."""

    def identity_of(self, request: web.Request) -> Identity | None:
        return request.get(IDENTITY)


async def _executor_ctx(app: web.Application) -> AsyncIterator[None]:
    await app[EXECUTOR].open()
    yield
    await app[EXECUTOR].close()


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _readyz(request: web.Request) -> web.Response:
    status, body = await readiness(request.app[EXECUTOR])
    return web.json_response(body, status=status)


async def _root(request: web.Request) -> web.Response:
    raise web.HTTPFound("/graphql")


def _refusal(refusal: Refusal) -> web.Response:
    status, headers, body = refusal
    return web.json_response(body, status=status, headers=headers)


def _graphql(view: GatewayView) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """/graphql: a JSON POST of one operation is answered here, anything else by the view."""
    executor = view.executor

    async def handle(request: web.Request) -> web.StreamResponse:
        try:
            await executor.open()
            identity = await executor.identify(request.headers.get("Authorization"))
        except GatewayError as exc:
            return _refusal(unavailable(exc))
        except TokenRejected as exc:
            return _refusal(invalid_token(exc))
        if identity is not None:
            request[IDENTITY] = identity
        if request.method == "POST" and request.content_type == "application/json":
            # The view reads the body again if needed: aiohttp keeps it.
            operation = read_json_operation(await request.read(), request.headers.get("Accept", ""))
            if operation is not None:
                body = await executor.answer(operation, request, identity)
                if body is not None:
                    return web.Response(body=body, content_type="application/json")
        return await view(request)

    return handle


def create_app(settings: Settings, policy: Policy | None = None) -> web.Application:
    """Wire the application; the data source opens when the app starts, not here."""
    app = web.Application(middlewares=[deadline(settings)])
    executor = Executor(settings, policy)
    app[SETTINGS] = settings
    app[EXECUTOR] = executor
    app.cleanup_ctx.append(_executor_ctx)

    view = GatewayView(schema=executor.schema, graphql_ide="graphiql")
    view.executor = executor
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
    handle = _graphql(view)
    cors_config.add(graphql.add_route("GET", handle))
    cors_config.add(graphql.add_route("POST", handle))
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/", _root)
    return app
