"""Readiness: what /readyz answers on every door, as (status, JSON body)."""

from __future__ import annotations

import asyncio

from gateway.errors import GatewayError
from gateway.execution.executor import Executor

__all__ = ["READY_TIMEOUT", "readiness"]

READY_TIMEOUT = 1.0


async def readiness(executor: Executor) -> tuple[int, dict[str, object]]:
    """/readyz: 200 when the data source is open (or opens) and answers `SELECT 1` within a second.

    The status is "ok", or "degraded" with the reason while a read replica is down. Where
    subscriptions run, `subscriptions` counts those receiving updates now.
    """
    try:
        source = await executor.open()
        async with asyncio.timeout(READY_TIMEOUT):
            await source.ping()
    except TimeoutError:
        return 503, {"status": "unavailable", "reason": f"database did not answer in {READY_TIMEOUT}s"}
    except GatewayError as exc:
        return 503, {"status": "unavailable", "reason": str(exc)}
    degraded = source.degraded()
    # Still ready while a read replica is down: every operation is answered, from the primary.
    body: dict[str, object] = {"status": "ok"}
    if degraded is not None:
        body = {"status": "degraded", "reason": degraded}
    if executor.feed is not None:
        body["subscriptions"] = executor.receiving()
    return 200, body
