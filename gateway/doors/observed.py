"""Each request observed, on both doors: its exchange current while it runs, `X-Request-Id` echoed,
the access line written at the end; and /metrics, guarded by METRICS_TOKEN when one is set."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.execution.executor import Executor
from gateway.telemetry.recorder import REQUEST_ID_HEADER, Telemetry

__all__ = ["ObservedAsgi", "metrics_answer", "observed", "publishing"]

# What the access log says of a request whose client went away before the answer (nginx's code).
CLIENT_GONE = 499
UNAUTHORIZED_HEADERS = {"WWW-Authenticate": 'Bearer realm="metrics"'}


def observed(telemetry: Telemetry) -> Middleware:
    """The aiohttp middleware, outermost, so every answer (errors included) carries the id."""

    @web.middleware
    async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
        exchange, handle = telemetry.begin(request.method, request.path, request.headers)
        status = 500
        try:
            response = await handler(request)
            status = response.status
            response.headers[REQUEST_ID_HEADER] = exchange.request_id
            return response
        except web.HTTPException as exc:
            status = exc.status
            exc.headers[REQUEST_ID_HEADER] = exchange.request_id
            raise
        except asyncio.CancelledError:
            status = CLIENT_GONE
            raise
        finally:
            telemetry.end(exchange, handle, request.method, request.path, status)

    return observe


class ObservedAsgi:
    """The same for the ASGI door: a plain ASGI middleware (the app runs in this task, so the
    exchange stays current), outermost."""

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


def metrics_answer(executor: Executor, authorization: str | None) -> tuple[int, bytes, dict[str, str]]:
    """/metrics: status, body and headers (401 without the METRICS_TOKEN when one is set)."""
    telemetry = executor.telemetry
    if not telemetry.metrics_allowed(authorization):
        return 401, b"/metrics needs the bearer token METRICS_TOKEN\n", UNAUTHORIZED_HEADERS
    body, content_type = telemetry.render_metrics(executor.stats())
    return 200, body, {hdrs.CONTENT_TYPE: content_type}


@asynccontextmanager
async def publishing(executor: Executor) -> AsyncIterator[None]:
    """Under several workers (PROMETHEUS_MULTIPROC_DIR), this worker's pool figures are copied to the
    shared files every second while the block runs; otherwise nothing."""
    metrics = executor.telemetry.metrics
    if metrics is None or not metrics.multiprocess:
        yield
        return
    task = asyncio.create_task(metrics.publish_every(executor.stats))
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
