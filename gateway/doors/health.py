"""Liveness and readiness: what /healthz and /readyz answer, for every HTTP door."""

from __future__ import annotations

import asyncio

from gateway.datasources.protocol import DataSource
from gateway.errors import GatewayError

__all__ = ["READY_TIMEOUT", "readiness"]

READY_TIMEOUT = 1.0


async def readiness(source: DataSource | None) -> tuple[int, dict[str, str]]:
    """HTTP status and body for /readyz: 200 when the pool answers `SELECT 1` within a second."""
    if source is None:
        return 503, {"status": "unavailable", "reason": "the data source is not open"}
    try:
        async with asyncio.timeout(READY_TIMEOUT):
            await source.ping()
    except TimeoutError:
        return 503, {"status": "unavailable", "reason": f"database did not answer in {READY_TIMEOUT}s"}
    except GatewayError as exc:
        return 503, {"status": "unavailable", "reason": str(exc)}
    return 200, {"status": "ok"}
