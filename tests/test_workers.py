"""`gateway serve --workers N`: N processes on one port, DB_POOL_MAX split between them."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import asyncpg

from tests.conftest import PG, server_env
from tests.processes import ROOT, post_in_progress, serve

QUERY = {"query": "{ users(first: 5) { edges { node { id displayName } } } }"}


def workers_of(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    # The spawn start method also runs a resource tracker beside the workers.
    return [int(c) for c in children if "spawn_main" in Path(f"/proc/{c}/cmdline").read_text()]


async def connections(database: str) -> int:
    conn = await asyncpg.connect(database="postgres", ssl=False, **PG)
    try:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", database
        )
    finally:
        await conn.close()
    return count


async def test_two_workers_share_the_port_within_the_pool_limit(pg_database: str) -> None:
    env = server_env("postgres", pg_database, DB_POOL_MAX="4", DB_POOL_MIN="2", LOG_LEVEL="WARNING")
    async with serve("aiohttp", env, "--workers", "2") as served:
        workers = workers_of(served.process.pid)
        assert len(workers) == 2
        # The port answers once one worker is up; the other may still be opening its pool.
        for _ in range(100):
            if await connections(pg_database) == 2:
                break
            await asyncio.sleep(0.1)
        assert await connections(pg_database) == 2  # DB_POOL_MIN=2 split: one each

        async def ask(http: aiohttp.ClientSession) -> int:
            async with http.post(f"{served.url}/graphql", json=QUERY) as response:
                assert "errors" not in await response.json()
                return response.status

        peak = 0
        # A new TCP connection per request, so the kernel spreads them over both workers.
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
            for _ in range(5):
                statuses = await asyncio.gather(*(ask(http) for _ in range(40)))
                assert statuses == [200] * 40
                peak = max(peak, await connections(pg_database))
        assert 2 <= peak <= 4  # each worker's pool holds at most DB_POOL_MAX // 2 = 2
    assert served.process.returncode == 0
    for pid in workers:
        assert not Path(f"/proc/{pid}").exists(), "a worker outlived SIGTERM"
    assert await connections(pg_database) == 0


async def test_a_worker_that_dies_stops_the_others(pg_database: str) -> None:
    env = server_env("postgres", pg_database, LOG_LEVEL="WARNING")
    async with serve("aiohttp", env, "--workers", "2") as served:
        first, second = workers_of(served.process.pid)
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while served.process.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert served.process.returncode == 1
        assert not Path(f"/proc/{second}").exists()
    assert "gateway-worker-1 exited with code -9; stopping the others" in served.stderr


def test_a_pool_too_small_for_the_workers_is_refused(pg_database: str) -> None:
    env = server_env("postgres", pg_database, DB_POOL_MAX="1", DB_POOL_MIN="0")
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "serve", "--workers", "2"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "DB_POOL_MAX=1 cannot be split across 2 workers" in result.stderr


async def test_ctrl_c_lets_every_workers_requests_under_way_finish(pg_database: str) -> None:
    # A terminal's Ctrl-C signals every process of the group (the workers too), then the parent
    # forwards SIGTERM: a worker's second signal cut the requests it was finishing.
    env = server_env("postgres", pg_database, DB_POOL_MAX="20", LOG_LEVEL="WARNING")
    async with serve("aiohttp", env, "--workers", "2") as served:
        port = int(served.url.rsplit(":", 1)[1])
        workers = workers_of(served.process.pid)
        await wait_for_pools(pg_database, workers)
        lock = await asyncpg.connect(database=pg_database, ssl=False, **PG)
        try:
            transaction = lock.transaction()
            await transaction.start()
            await lock.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
            emails = [f"late{n}@example.com" for n in range(10)]
            create = 'mutation($e: String!) { createUser(input: {email: $e, displayName: "L"}) { email } }'
            in_flight = await asyncio.gather(
                *(
                    post_in_progress(port, "/graphql", {"query": create, "variables": {"e": e}})
                    for e in emails
                )
            )
            for pid in (*workers, served.process.pid):
                os.kill(pid, signal.SIGINT)
            await asyncio.sleep(0.3)
            for pid in workers:  # however late the parent's SIGTERM comes
                os.kill(pid, signal.SIGTERM)
            await asyncio.sleep(0.3)
            await transaction.rollback()
            answers = await asyncio.gather(*(request.response() for request in in_flight))
            assert sorted(answers, key=str) == sorted(
                ((200, {"data": {"createUser": {"email": e}}}) for e in emails), key=str
            )
            assert await lock.fetchval("SELECT count(*) FROM users WHERE email LIKE 'late%'") == 10
        finally:
            await lock.close()
        deadline = time.monotonic() + 30
        while served.process.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
    assert served.process.returncode == 0, served.stderr


async def wait_for_pools(database: str, workers: list[int]) -> None:
    """Until each worker has its pool open (DB_POOL_MIN=2 split: one connection each)."""
    for _ in range(100):
        if await connections(database) >= len(workers):
            return
        await asyncio.sleep(0.1)
