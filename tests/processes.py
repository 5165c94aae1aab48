"""Gateway processes for tests: `gateway serve` (aiohttp) or the Vercel entry under uvicorn (ASGI)."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bench.postgres_instance import free_port
from tests.polling import until

ROOT = Path(__file__).resolve().parent.parent
DOORS = ("aiohttp", "asgi")


async def wait_until_up(
    port: int, path: str = "/healthz", server: subprocess.Popen[str] | None = None
) -> None:
    """Until `path` answers 200 (at most 30 s); fails early with the server's output if it exited."""
    async with aiohttp.ClientSession() as http:

        async def answers() -> bool:
            if server is not None and server.poll() is not None:
                raise AssertionError(f"server exited {server.returncode}: {server.communicate()[1]}")
            try:
                async with http.get(f"http://127.0.0.1:{port}{path}") as response:
                    return response.status == 200
            except aiohttp.ClientError:
                return False

        await until(answers, f"the server on port {port} answers {path}", timeout=30, interval=0.1)


async def wait_until_not_listening(port: int) -> None:
    """Until connecting to `port` is refused (at most 15 s): the server has begun shutting down."""

    async def refused() -> bool:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except (ConnectionRefusedError, ConnectionResetError):
            # Reset: the listening socket closed with this connection still in its queue.
            return True
        writer.close()
        await writer.wait_closed()
        return False

    await until(refused, f"port {port} refuses connections", timeout=15)


def run_gateway(
    args: Sequence[str], env: dict[str, str], cwd: Path = ROOT, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`gateway <args>` run to its end in `cwd` under `env` (at most 60 s), `stdin` piped in, its
    output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def run_gateway_async(args: Sequence[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """As run_gateway, without blocking the event loop, so that servers the test runs in it can
    answer the command."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    return subprocess.CompletedProcess([*args], await process.wait(), out.decode(), err.decode())


@dataclass
class PostInProgress:
    """A POST the server has received whole and begun handling: it answered 100 Continue."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    async def response(self) -> tuple[int, Any]:
        """The final response's status and JSON (at most 15 s)."""
        try:
            async with asyncio.timeout(15):
                head = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1")
                status_line, *lines = head.strip().split("\r\n")
                headers = dict(line.lower().split(": ", 1) for line in lines)
                payload = await self.reader.readexactly(int(headers["content-length"]))
        finally:
            self.writer.close()
            await self.writer.wait_closed()
        return int(status_line.split()[1]), json.loads(payload)


async def post_in_progress(port: int, path: str, document: Any) -> PostInProgress:
    """POST `document` as JSON with `Expect: 100-continue`; return once the server answers 100.

    aiohttp answers 100 Continue when it has routed the request to its handler, so from then on
    the request is in flight on the server. The body goes in the same write as the headers (a
    client need not wait for the 100), so over loopback the server reads them together: once a
    shutdown begins, aiohttp ignores bytes that arrive later.
    """
    body = json.dumps(document).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n"
    )
    async with asyncio.timeout(15):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(head.encode() + body)
        await writer.drain()
        interim = await reader.readuntil(b"\r\n\r\n")
    if not interim.startswith(b"HTTP/1.1 100 "):
        writer.close()
        await writer.wait_closed()
        raise AssertionError(f"expected 100 Continue, got {interim!r}")
    return PostInProgress(reader, writer)


@dataclass
class Served:
    """A running gateway process and what it wrote to stderr once stopped."""

    url: str
    process: subprocess.Popen[str]
    stderr: str = ""

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])


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
