"""Waiting in tests for a condition to hold, with a bound, instead of sleeping and hoping."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable

__all__ = ["until"]


async def until(
    condition: Callable[[], bool | Awaitable[bool]],
    what: str,
    timeout: float = 10.0,
    interval: float = 0.02,
) -> None:
    """Check `condition` every `interval` until it holds; fail naming `what` after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if loop.time() >= deadline:
            raise AssertionError(f"still waiting after {timeout:g}s until {what}")
        await asyncio.sleep(interval)
