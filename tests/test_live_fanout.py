"""Live updates between real `gateway serve` processes: a write through one instance reaches
subscribers on another (PostgreSQL LISTEN/NOTIFY, MariaDB polling; WebSocket and SSE), through a
database restart, to the npm `graphql-ws` client, and sockets close with 1001 on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bench.postgres_instance import postgres_instance
from tests.conftest import server_env
from tests.live_client import LEGACY_WS, open_socket, open_stream
from tests.polling import until
from tests.processes import serve

FEED = "subscription { activityAdded { kind user { displayName } shootingSession { shotCount } } }"
CREATE_USER = "mutation($n: String!) { createUser(input: {email: $n, displayName: $n}) { id } }"
CREATE_SESSION = """mutation($u: ID!) {
  createShootingSession(input: {userId: $u, discipline: "Air", shots: [{score: 9.5}]}) { id } }"""
NPM_CLIENT = Path(__file__).resolve().parent / "live_npm"


async def post(url: str, query: str, **variables: Any) -> dict[str, Any]:
    payload = {"query": query, "variables": variables}
    async with aiohttp.ClientSession() as http, http.post(f"{url}/graphql", json=payload) as response:
        body: dict[str, Any] = await response.json()
        return body


async def write_session(url: str, name: str) -> None:
    """A member named `name` and a session of theirs, written through the gateway at `url`."""
    user = await post(url, CREATE_USER, n=f"{name}@example.com")
    assert "errors" not in user, user
    session = await post(url, CREATE_SESSION, u=user["data"]["createUser"]["id"])
    assert "errors" not in session, session


async def subscribed(url: str, count: int) -> None:
    """Until the gateway at `url` has `count` subscriptions receiving updates (its /readyz says)."""

    async def enough() -> bool:
        async with aiohttp.ClientSession() as http, http.get(f"{url}/readyz") as response:
            return response.status == 200 and (await response.json()).get("subscriptions", 0) >= count

    await until(enough, f"{count} subscriptions on {url}", timeout=30, interval=0.05)


def expected(name: str) -> dict[str, Any]:
    user = {"displayName": f"{name}@example.com"}
    return {"activityAdded": {"kind": "SESSION_CREATED", "user": user, "shootingSession": {"shotCount": 1}}}


@pytest.mark.parametrize("backend", ["postgres", "mysql"])
async def test_a_write_through_one_instance_reaches_subscribers_on_another(
    backend: str, fresh_database: Callable[[str], str]
) -> None:
    env = server_env(backend, fresh_database(backend), LIVE_POLL_INTERVAL="0.2")
    async with (
        serve("aiohttp", env) as a,
        serve("aiohttp", env) as b,
        open_socket(f"{b.url}/graphql") as socket,
        open_stream(f"{b.url}/graphql", FEED) as stream,
    ):
        await socket.init()
        await socket.subscribe("feed", FEED)
        await subscribed(b.url, 2)
        await write_session(a.url, "ada")
        assert await socket.next_payload("feed") == {"data": expected("ada")}
        assert await stream.event() == ("next", {"data": expected("ada")})
        await write_session(a.url, "bob")
        assert await socket.next_payload("feed") == {"data": expected("bob")}
        assert await stream.event() == ("next", {"data": expected("bob")})
    for served in (a, b):
        assert "Traceback" not in served.stderr, served.stderr


async def test_subscribers_keep_receiving_after_postgres_restarts() -> None:
    with postgres_instance("fsync = off\n", prefix="gw-test-pg-") as database:
        env = server_env(
            "postgres",
            "postgres",
            DB_PORT=str(database.port),
            DB_USER="postgres",
            DB_CONNECT_TIMEOUT="1",
            DB_ACQUIRE_TIMEOUT="1",
        )
        async with serve("aiohttp", env) as gateway, open_socket(f"{gateway.url}/graphql") as socket:
            await socket.init()
            await socket.subscribe("feed", FEED)
            await subscribed(gateway.url, 1)
            await write_session(gateway.url, "before")
            assert await socket.next_payload("feed") == {"data": expected("before")}

            await asyncio.to_thread(database.stop)
            during = await post(gateway.url, CREATE_USER, n="during@example.com")
            assert during["errors"][0]["extensions"]["code"] == "UNAVAILABLE"
            await asyncio.to_thread(database.start)

            async def written() -> bool:
                return "errors" not in await post(gateway.url, "{ users(first: 1) { edges { cursor } } }")

            await until(written, "the gateway reads again", timeout=30, interval=0.2)
            await write_session(gateway.url, "after")
            # The same socket: the subscriber only waited.
            assert await socket.next_payload("feed") == {"data": expected("after")}
    assert "live updates paused" in gateway.stderr, gateway.stderr
    assert "live updates resumed" in gateway.stderr, gateway.stderr


async def test_the_npm_graphql_ws_client_receives_updates(tmp_path: Path) -> None:
    if not (NPM_CLIENT / "node_modules" / "graphql-ws").is_dir():
        pytest.fail(f"graphql-ws is not installed: run `npm ci` in {NPM_CLIENT} (scripts/test does)")
    env = server_env("sqlite", None, DB_SQLITE_PATH=str(tmp_path / "gateway.db"))
    async with serve("aiohttp", env) as gateway:
        client = await asyncio.create_subprocess_exec(
            "node",
            str(NPM_CLIENT / "subscribe.mjs"),
            f"{gateway.url.replace('http', 'ws', 1)}/graphql",
            FEED,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            await subscribed(gateway.url, 1)
            await write_session(gateway.url, "ada")
            async with asyncio.timeout(30):
                out, err = await client.communicate()
        finally:
            if client.returncode is None:
                client.kill()
                await client.wait()
    lines = [json.loads(line) for line in out.decode().splitlines()]
    assert lines[0] == {"event": "next", "payload": {"data": expected("ada")}}, (lines, err)
    assert client.returncode == 0, err


async def test_sigterm_closes_sockets_with_going_away_and_ends_event_streams(tmp_path: Path) -> None:
    env = server_env("sqlite", None, DB_SQLITE_PATH=str(tmp_path / "gateway.db"))
    async with (
        serve("aiohttp", env) as gateway,
        open_socket(f"{gateway.url}/graphql") as modern,
        open_socket(f"{gateway.url}/graphql", LEGACY_WS) as legacy,
        open_stream(f"{gateway.url}/graphql", FEED) as stream,
    ):
        for socket in (modern, legacy):
            await socket.init()
            await socket.subscribe("feed", FEED)
        await subscribed(gateway.url, 3)
        gateway.process.send_signal(signal.SIGTERM)
        for socket in (modern, legacy):
            closed = await socket.receive()
            assert closed["type"] == "closed" and closed["code"] == 1001, closed
        # A complete response (its chunked end), not a transfer cut off: clients and proxies see
        # the stream end, not an error.
        assert await stream.event() == ("closed", None)
        await asyncio.to_thread(gateway.process.wait, 30)
    assert gateway.process.returncode == 0, gateway.stderr
