"""The Vercel entry's lifecycle: nothing connects before the first request, one pool per instance."""

from __future__ import annotations

import asyncio
import json
import runpy
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pymysql
import pytest
from starlette.applications import Starlette

from gateway.doors.serverless import SERVERLESS_POOL, serverless_profile
from gateway.execution.executor import Executor
from gateway.settings import Settings
from tests.conftest import MY, PG, server_env
from tests.processes import ROOT, free_port, serve

QUERY = {"query": "{ users(first: 5) { edges { node { id } } } }"}


async def connections_to(backend: str, database: str) -> int:
    """Client connections the server holds open to `database`, other than this one."""
    if backend == "postgres":
        conn = await asyncpg.connect(database="postgres", ssl=False, **PG)
        try:
            sql = "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()"
            return int(await conn.fetchval(sql, database))
        finally:
            await conn.close()
    my = pymysql.connect(**MY)  # type: ignore[arg-type]
    try:
        with my.cursor() as cursor:
            cursor.execute("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = %s", (database,))
            return int(cursor.fetchone()[0])
    finally:
        my.close()


async def post_many(url: str, times: int) -> list[int]:
    async with aiohttp.ClientSession() as http:

        async def post() -> int:
            async with http.post(url + "/graphql", json=QUERY) as response:
                body = await response.json()
                assert "errors" not in body, body
                return response.status

        return await asyncio.gather(*(post() for _ in range(times)))


@pytest.mark.parametrize("backend", ["postgres", "mysql"])
async def test_twenty_first_requests_share_one_small_pool_closed_at_shutdown(
    backend: str, fresh_database: Callable[[str], str]
) -> None:
    database = fresh_database(backend)
    async with serve("asgi", server_env(backend, database)) as served:
        assert await connections_to(backend, database) == 0, "connected before any request"
        assert await post_many(served.url, 20) == [200] * 20
        held = await connections_to(backend, database)
        assert 1 <= held <= SERVERLESS_POOL["db_pool_max"], held
    # uvicorn re-raises the SIGTERM it handled once shutdown is complete.
    assert served.process.returncode == -signal.SIGTERM, served.stderr
    assert f"data source {backend} closed" in served.stderr
    assert await connections_to(backend, database) == 0, "the pool outlived the shutdown"


async def test_sqlite_file_is_created_by_the_first_request_not_at_import(tmp_path: Path) -> None:
    path = tmp_path / "club.db"
    async with serve("asgi", server_env("sqlite", None, DB_SQLITE_PATH=str(path))) as served:
        assert not path.exists()
        assert await post_many(served.url, 20) == [200] * 20
        assert path.exists()


async def test_concurrent_first_uses_open_one_data_source(
    backend: str, make_settings: Callable[..., Settings]
) -> None:
    executor = Executor(make_settings(backend))
    try:
        sources = await asyncio.gather(*(executor.open() for _ in range(20)))
        assert executor.opens == 1
        assert all(source is sources[0] for source in sources)
    finally:
        await executor.close()


async def test_unreachable_database_is_unavailable_not_a_crash() -> None:
    env = server_env("postgres", "test", DB_PORT=str(free_port()), DB_CONNECT_TIMEOUT="1")
    async with serve("asgi", env) as served, aiohttp.ClientSession() as http:
        async with http.post(served.url + "/graphql", json=QUERY) as response:
            assert response.status == 503
            body = await response.json()
        async with http.get(served.url + "/readyz") as ready:
            assert ready.status == 503
    assert body["data"] is None
    assert [e["extensions"]["code"] for e in body["errors"]] == ["UNAVAILABLE"]


def test_serverless_sizes_apply_only_where_the_user_set_nothing() -> None:
    defaults = serverless_profile(Settings(_env_file=None))  # type: ignore[call-arg]
    assert (defaults.db_pool_max, defaults.db_pool_min) == (2, 0)
    chosen = serverless_profile(Settings(_env_file=None, db_pool_max=5))  # type: ignore[call-arg]
    assert (chosen.db_pool_max, chosen.db_pool_min) == (5, 0)


def test_vercel_routes_point_at_an_entry_that_exposes_the_asgi_app(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config: dict[str, Any] = json.loads((ROOT / "vercel.json").read_text())
    routed = {rewrite["source"]: rewrite["destination"] for rewrite in config["rewrites"]}
    assert set(routed) >= {"/graphql", "/healthz", "/readyz"}
    for destination in set(routed.values()):
        entry = ROOT / (destination.lstrip("/") + ".py")
        assert entry.is_file(), destination
        assert entry.relative_to(ROOT).as_posix() in config["functions"]
        monkeypatch.setenv("DB_SQLITE_PATH", str(tmp_path / "club.db"))
        assert isinstance(runpy.run_path(str(entry))["app"], Starlette)
    excluded = config["functions"]["api/index.py"]["excludeFiles"]
    for private in ("tests/**", "certs/**", "**/.env", "**/*.db"):
        assert private in excluded
