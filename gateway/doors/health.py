"""Readiness: what /readyz answers on every door, as (status, JSON body)."""

from __future__ import annotations

import asyncio

from gateway.errors import GatewayError
from gateway.execution.executor import Executor

__all__ = ["READY_TIMEOUT", "readiness"]

READY_TIMEOUT = 1.0


async def readiness(executor: Executor) -> tuple[int, dict[str, object]]:
    """/readyz: 200 when the data source is open (or opens) and answers `SELECT 1` within a second.

    Where subscriptions run, `subscriptions` counts those receiving updates now.
    """
    try:
        source = await executor.open()
        async with asyncio.timeout(READY_TIMEOUT):
            await source.ping()
    except TimeoutError:
        return 503, {"status": "unavailable", "reason": f"database did not answer in {READY_TIMEOUT}s"}
    except GatewayError as exc:
        return 503, {"status": "unavailable", "reason": str(exc)}
    if executor.feed is None:
        return 200, {"status": "ok"}
    return 200, {"status": "ok", "subscriptions": executor.receiving()}
