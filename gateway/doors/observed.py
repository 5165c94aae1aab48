"""What both doors share to observe requests: /metrics (guarded by METRICS_TOKEN when one is set),
and the multiprocess publisher. Each door's own middleware (aiohttp_app, asgi_app) makes the
request's exchange current, echoes `X-Request-Id` and writes the access line; this module imports
neither framework, so the ASGI door loads no aiohttp."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from gateway.execution.executor import Executor

__all__ = ["CLIENT_GONE", "metrics_answer", "publishing"]

# What the access log says of a request whose client went away before the answer (nginx's code).
CLIENT_GONE = 499
UNAUTHORIZED_HEADERS = {"WWW-Authenticate": 'Bearer realm="metrics"'}


def metrics_answer(executor: Executor, authorization: str | None) -> tuple[int, bytes, dict[str, str]]:
    """/metrics: status, body and headers (401 without the METRICS_TOKEN when one is set)."""
    telemetry = executor.telemetry
    if not telemetry.metrics_allowed(authorization):
        return 401, b"/metrics needs the bearer token METRICS_TOKEN\n", UNAUTHORIZED_HEADERS
    body, content_type = telemetry.render_metrics(executor.stats())
    return 200, body, {"Content-Type": content_type}


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
