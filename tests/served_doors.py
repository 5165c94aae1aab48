"""Both doors served in this process on 127.0.0.1: aiohttp's TestServer and uvicorn running the ASGI app.

Tests that hold for every door take the `door` name and call `served(door, settings)`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from aiohttp.test_utils import TestServer

from gateway.doors.aiohttp_app import create_app
from gateway.doors.asgi_app import create_asgi_app
from gateway.settings import Settings
from tests.polling import until
from tests.processes import DOORS, free_port

__all__ = ["DOORS", "served"]


@asynccontextmanager
async def served(door: str, settings: Settings) -> AsyncIterator[str]:
    """The base URL of `door` serving `settings`, until the block ends."""
    if door == "aiohttp":
        server = TestServer(create_app(settings), host="127.0.0.1")
        await server.start_server()
        try:
            yield str(server.make_url("")).rstrip("/")
        finally:
            await server.close()
        return
    port = free_port()
    # server_header=False: what is left is what the application itself sends.
    config = uvicorn.Config(
        create_asgi_app(settings),
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
        yield f"http://127.0.0.1:{port}"
    finally:
        uvicorn_server.should_exit = True
        await task
