"""Liveness, readiness and unavailability: what every HTTP door answers, as (status, JSON body)."""

from __future__ import annotations

import asyncio
from typing import Any

from gateway.errors import ErrorCode, GatewayError
from gateway.execution.executor import Executor

__all__ = ["READY_TIMEOUT", "readiness", "unavailable"]

READY_TIMEOUT = 1.0


async def readiness(executor: Executor) -> tuple[int, dict[str, str]]:
    """/readyz: 200 when the data source is open (or opens) and answers `SELECT 1` within a second."""
    try:
        source = await executor.open()
        async with asyncio.timeout(READY_TIMEOUT):
            await source.ping()
    except TimeoutError:
        return 503, {"status": "unavailable", "reason": f"database did not answer in {READY_TIMEOUT}s"}
    except GatewayError as exc:
        return 503, {"status": "unavailable", "reason": str(exc)}
    return 200, {"status": "ok"}


def unavailable(exc: GatewayError) -> tuple[int, dict[str, Any]]:
    """The answer to a GraphQL request when the data source cannot be opened: 503, coded UNAVAILABLE."""
    error = {"message": str(exc), "extensions": {"code": ErrorCode.UNAVAILABLE.value}}
    return 503, {"data": None, "errors": [error]}
