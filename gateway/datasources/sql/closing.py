"""Closing a driver's pool: wait a bounded time for connections in use, then terminate them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

__all__ = ["CLOSE_TIMEOUT", "close_or_terminate"]

log = logging.getLogger(__name__)

CLOSE_TIMEOUT = 10.0


async def close_or_terminate(
    closed: Awaitable[None], terminate: Callable[[], None], what: str, timeout: float = CLOSE_TIMEOUT
) -> None:
    """Await `closed` (which waits for every connection in use) up to `timeout`, then `terminate()`."""
    try:
        await asyncio.wait_for(closed, timeout)
    except TimeoutError:
        log.warning("%s did not close in %ss; terminating it", what, timeout)
        terminate()
