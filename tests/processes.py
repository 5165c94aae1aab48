"""Gateway processes for tests: `gateway serve` (aiohttp) or the Vercel entry under uvicorn (ASGI)."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
DOORS = ("aiohttp", "asgi")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_until_up(
    port: int, path: str = "/healthz", server: subprocess.Popen[str] | None = None
) -> None:
    """Until `path` answers 200; fails early with the server's output if it exited."""
    async with aiohttp.ClientSession() as http:
        for _ in range(150):
            if server is not None and server.poll() is not None:
                raise AssertionError(f"server exited {server.returncode}: {server.communicate()[1]}")
            try:
                async with http.get(f"http://127.0.0.1:{port}{path}") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"server on port {port} did not answer {path}")


@dataclass
class Served:
    """A running gateway process and what it wrote to stderr once stopped."""

    url: str
    process: subprocess.Popen[str]
    stderr: str = ""


def command(door: str, port: int, *options: str) -> list[str]:
    if door == "aiohttp":
        return [sys.executable, "-m", "gateway", "serve", "--port", str(port), *options]
    return [sys.executable, "-m", "uvicorn", "api.index:app", "--host", "127.0.0.1", "--port", str(port)]


@asynccontextmanager
async def serve(door: str, env: dict[str, str], *options: str) -> AsyncIterator[Served]:
    """Start the gateway behind `door`, with `serve` options; wait until it answers; SIGTERM on exit."""
    port = free_port()
    process = subprocess.Popen(
        command(door, port, *options), cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True
    )
    served = Served(url=f"http://127.0.0.1:{port}", process=process)
    try:
        await wait_until_up(port, server=process)
        yield served
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            _, served.stderr = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            _, served.stderr = process.communicate()
