"""Start-up and shutdown: migrations once per database, a clean stop on SIGTERM, the CLI."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.datasources import create_data_source
from gateway.datasources.sql.migrations import load_migrations
from gateway.doors.aiohttp_app import create_app
from gateway.doors.app_keys import EXECUTOR
from gateway.schema import schema_sdl
from gateway.settings import Settings
from tests.conftest import sql_source
from tests.graphql_client import error_codes, graphql
from tests.processes import free_port, post_in_progress, wait_until_not_listening, wait_until_up

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def fresh_settings(
    backend: str, make_settings: Callable[..., Settings], fresh_database: Callable[[str], str]
) -> Settings:
    """Settings pointing at a database nobody has migrated yet."""
    if backend == "sqlite":
        return make_settings(backend)
    return make_settings(backend, db_name=fresh_database(backend))


async def test_two_processes_starting_at_once_apply_each_migration_once(fresh_settings: Settings) -> None:
    sources = [sql_source(create_data_source(fresh_settings)) for _ in range(3)]
    await asyncio.gather(*(source.open() for source in sources))
    try:
        async with sources[0].connection() as conn:
            rows = await conn.fetch("SELECT version, COUNT(*) AS n FROM schema_migrations GROUP BY version")
            users = await conn.fetch("SELECT COUNT(*) AS n FROM users")
        expected = [m.version for m in load_migrations(f"gateway.datasources.{fresh_settings.db_backend}")]
        assert sorted((int(r["version"]), int(r["n"])) for r in rows) == [(v, 1) for v in expected]
        assert int(users[0]["n"]) == 0
    finally:
        for source in sources:
            await source.close()


def gateway_env(tmp_path: Path, port: int) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DB_", "APP_", "CORS_"))}
    return {**clean, "DB_SQLITE_PATH": str(tmp_path / "club.db"), "PORT": str(port)}


CREATE_LATE_USER = (
    'mutation($email: String!) { createUser(input: {email: $email, displayName: "Late"}) { email } }'
)


async def test_demo_club_is_served_and_sigterm_lets_requests_finish(tmp_path: Path) -> None:
    port = free_port()
    env = gateway_env(tmp_path, port)
    init = subprocess.run(
        [sys.executable, "-m", "gateway", "init-db", "--demo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert init.returncode == 0, init.stderr
    assert "demo club loaded" in init.stdout
    server = subprocess.Popen(
        [sys.executable, "-m", "gateway", "serve"], env=env, stderr=subprocess.PIPE, text=True
    )
    lock = sqlite3.connect(tmp_path / "club.db", isolation_level=None)
    try:
        await wait_until_up(port, "/readyz", server)
        demo = {"query": "{ shootingSessions(first: 100) { edges { node { shots { score } } } } }"}
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"http://127.0.0.1:{port}/graphql", json=demo) as r,
        ):
            assert len((await r.json())["data"]["shootingSessions"]["edges"]) == 9

        # While the test holds SQLite's write lock, the server can begin these writes but not finish them.
        lock.execute("BEGIN IMMEDIATE")
        emails = [f"late{n}@example.com" for n in range(20)]
        late = [{"query": CREATE_LATE_USER, "variables": {"email": email}} for email in emails]
        in_flight = await asyncio.gather(*(post_in_progress(port, "/graphql", doc) for doc in late))
        server.send_signal(signal.SIGTERM)
        await wait_until_not_listening(port)
        # A second signal while they finish (a supervisor signalling the group, Ctrl-C twice) cut
        # them all: it is ignored.
        server.send_signal(signal.SIGTERM)
        server.send_signal(signal.SIGINT)
        await asyncio.sleep(0.3)
        lock.execute("ROLLBACK")
        answers = await asyncio.gather(*(request.response() for request in in_flight))
        assert answers == [(200, {"data": {"createUser": {"email": email}}}) for email in emails]
        _, stderr = server.communicate(timeout=30)
        assert server.returncode == 0, stderr
        assert "data source sqlite closed" in stderr
        assert "already stopping" in stderr
        (kept,) = lock.execute("SELECT COUNT(*) FROM users WHERE email LIKE 'late%'").fetchone()
        assert kept == 20
    finally:
        lock.close()
        if server.poll() is None:
            server.kill()
            server.communicate()


def test_committed_schema_matches_the_code() -> None:
    committed = (ROOT / "schema.graphql").read_text()
    assert committed == schema_sdl(), "schema.graphql is stale: run `gateway export-schema > schema.graphql`"


def test_export_schema_prints_the_sdl() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "export-schema"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    assert "type ShootingSession implements Node {" in result.stdout
    assert "createShootingSession(input: CreateShootingSessionInput!): ShootingSession!" in result.stdout


async def test_a_full_pool_answers_unavailable_after_the_acquire_timeout(
    backend: str, make_settings: Callable[..., Settings], aiohttp_client: Any
) -> None:
    """With every connection taken, a query waits DB_ACQUIRE_TIMEOUT once, then gets UNAVAILABLE."""
    timeout = 1.0
    app = create_app(make_settings(backend, db_pool_max=1, db_pool_min=1, db_acquire_timeout=timeout))
    client = await aiohttp_client(app)
    query = "{ users(first: 1) { edges { cursor } } }"
    assert "errors" not in await graphql(client, query)  # the fast path, with an idle connection
    async with sql_source(app[EXECUTOR].data_source).connection():
        started = asyncio.get_running_loop().time()
        response = await client.post("/graphql", json={"query": query})
        body = await response.json()
        waited = asyncio.get_running_loop().time() - started
    assert (response.status, response.headers["Retry-After"]) == (503, "5")  # UNAVAILABLE alone: 503
    assert error_codes(body) == ["UNAVAILABLE"]
    # How long the client waits is the behaviour here, so it is measured. A timeout never fires
    # early, so the wait is at least one DB_ACQUIRE_TIMEOUT; waiting again on the interpreted path,
    # which words the error, after the fast path gave up would take at least two. The window
    # between is the whole timeout wide, not a tolerance tuned to a fast machine.
    assert timeout <= waited < 2 * timeout
    assert "errors" not in await graphql(client, query)  # released: served again
