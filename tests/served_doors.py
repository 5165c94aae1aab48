"""Both doors served in this process on 127.0.0.1: aiohttp's TestServer and uvicorn running the ASGI app.

Tests that hold for every door take the `door` name and call `served(door, settings)`, or
`served_door(door, settings)` to reach the executor behind it too.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import uvicorn
from aiohttp.test_utils import TestServer

from gateway.doors.aiohttp_app import create_app
from gateway.doors.app_keys import EXECUTOR
from gateway.doors.asgi_app import create_asgi_app
from gateway.execution.executor import Executor
from gateway.settings import Settings
from tests.polling import until
from tests.processes import DOORS, free_port

__all__ = ["DOORS", "Door", "served", "served_door"]


@dataclass
class Door:
    """A door being served: its base URL, and the executor behind it (to count its statements)."""

    url: str
    executor: Executor


@asynccontextmanager
async def served(door: str, settings: Settings) -> AsyncIterator[str]:
    """The base URL of `door` serving `settings`, until the block ends."""
    async with served_door(door, settings) as running:
        yield running.url


@asynccontextmanager
async def served_door(door: str, settings: Settings) -> AsyncIterator[Door]:
    """`door` serving `settings`, until the block ends."""
    if door == "aiohttp":
        app = create_app(settings)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        try:
            yield Door(str(server.make_url("")).rstrip("/"), app[EXECUTOR])
        finally:
            await server.close()
        return
    port = free_port()
    asgi_app = create_asgi_app(settings)
    # server_header=False: what is left is what the application itself sends.
    config = uvicorn.Config(
        asgi_app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        ws="none",
        lifespan="on",
        server_header=False,
    )
    uvicorn_server = uvicorn.Server(config)
    task = asyncio.create_task(uvicorn_server.serve())
    try:
        await until(lambda: uvicorn_server.started or task.done(), "uvicorn has started", timeout=15)
        if task.done():
            task.result()  # raises what stopped it
        yield Door(f"http://127.0.0.1:{port}", asgi_app.state.executor)
    finally:
        uvicorn_server.should_exit = True
        await task
