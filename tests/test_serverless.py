"""The Vercel entry's lifecycle: nothing connects before the first request, one pool per instance."""

from __future__ import annotations

import asyncio
import contextlib
import json
import runpy
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pymysql
import pytest
from starlette.applications import Starlette

from gateway.datasources.mysql import MysqlDataSource
from gateway.datasources.protocol import DataSourceUnavailable
from gateway.doors.serverless import SERVERLESS_POOL, serverless_profile
from gateway.execution.executor import Executor
from gateway.settings import Settings
from tests.conftest import MY, PG, server_env
from tests.fake_servers import serving
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
    # A minimum alone over the serverless maximum raises it (asyncpg refused min > max on every request).
    at_least = serverless_profile(Settings(_env_file=None, db_pool_min=5))  # type: ignore[call-arg]
    assert (at_least.db_pool_max, at_least.db_pool_min) == (5, 5)
    small = serverless_profile(Settings(_env_file=None, db_pool_min=1))  # type: ignore[call-arg]
    assert (small.db_pool_max, small.db_pool_min) == (2, 1)


async def test_a_pool_minimum_set_alone_serves_on_the_vercel_function(
    fresh_database: Callable[[str], str],
) -> None:
    database = fresh_database("postgres")
    async with serve("asgi", server_env("postgres", database, DB_POOL_MIN="5")) as served:
        assert await post_many(served.url, 5) == [200] * 5


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
    # Vercel's Python builder ships bytecode (the project's and the packages') only when asked; without
    # it every cold start compiles all it imports (bench/results.md: ~630 against ~245 ms).
    assert config["build"]["env"]["VERCEL_PYTHON_COMPILEALL"] == "1"
    excluded = config["functions"]["api/index.py"]["excludeFiles"]
    for private in ("tests/**", "certs/**", "**/.env", "**/*.db", ".venv/**", ".venv-*/**"):
        assert private in excluded
    # The builder reads the entry folder's .python-version ahead of requires-python; a version it does
    # not offer (3.12-3.14 today) is ignored with a warning, and the function falls back to 3.12.
    assert (ROOT / "api" / ".python-version").read_text().strip() in {"3.12", "3.13", "3.14"}


# Run in a fresh interpreter: import the Vercel entry, answer one anonymous query through its ASGI
# app, print what got loaded.
_COLD_INSTANCE = """
import asyncio, json, sys
import api.index

async def ask():
    body = json.dumps({"query": "{ users(first: 1) { edges { node { id } } } }"}).encode()
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "https", "path": "/graphql", "raw_path": b"/graphql", "query_string": b"",
        "root_path": "", "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 443),
        "headers": [(b"host", b"club.example"), (b"content-type", b"application/json")]}
    requests, sent, done = [body], [], asyncio.Event()
    async def receive():
        if requests:
            return {"type": "http.request", "body": requests.pop(), "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}
    async def send(message):
        sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            done.set()
    await api.index.app(scope, receive, send)
    return sent[0]["status"], json.loads(b"".join(m.get("body", b"") for m in sent[1:]))

status, answer = asyncio.run(ask())
print(json.dumps({"status": status, "answer": answer, "modules": sorted(sys.modules)}), flush=True)
__import__("os")._exit(0)  # the open SQLite thread would keep the process alive
"""

# What a cold instance on SQLite, asked anonymously, has no use for: other backends' drivers, the
# AWS client, the HTTP client (JWKS fetches), PyJWT and cryptography (token and CA checks).
NOT_NEEDED = ("asyncpg", "aiomysql", "pymysql", "boto3", "botocore", "aiohttp", "jwt", "cryptography")
# Nor Strawberry's federation directives, which its Schema() imports only to warn about using them.
UNUSED_MODULES = ("strawberry.federation.schema_directives",)


@pytest.mark.parametrize(
    "sign_in",
    [
        {"APP_ENV": "production", "AUTH_JWT_SECRET": "cold-start-secret-cold-start-secret-0123456789"},
        {
            "AUTH_JWKS_URL": "http://127.0.0.1:9/.well-known/jwks.json",
            "AUTH_ISSUER": "https://issuer.example",
            "AUTH_AUDIENCE": "club",
        },
    ],
    ids=["secret", "jwks"],
)
def test_a_cold_sqlite_instance_answers_without_loading_drivers_aws_or_token_libraries(
    tmp_path: Path, sign_in: dict[str, str]
) -> None:
    env = server_env("sqlite", None, DB_SQLITE_PATH=str(tmp_path / "club.db"), **sign_in)
    env.pop("PYTHONPATH", None)  # the entry puts the project on sys.path itself, as on Vercel
    done = subprocess.run(
        [sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1])\n" + _COLD_INSTANCE, str(ROOT)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    instance = json.loads(done.stdout)
    assert instance["status"] == 200 and instance["answer"] == {"data": {"users": {"edges": []}}}
    loaded = {name.split(".")[0] for name in instance["modules"]}
    assert loaded.isdisjoint(NOT_NEEDED), sorted(loaded.intersection(NOT_NEEDED))
    assert set(instance["modules"]).isdisjoint(UNUSED_MODULES)


def _silent(sock: socket.socket) -> None:
    """A database that accepts the connection and never greets, until the client hangs up."""
    with contextlib.suppress(OSError), sock:
        sock.recv(1)


async def test_first_requests_to_a_silent_database_share_one_failed_open(
    make_settings: Callable[..., Settings],
) -> None:
    """Requests arriving together fail together after one DB_CONNECT_TIMEOUT, not one after another."""
    async with serving(_silent) as port:
        settings = make_settings("mysql", db_host="127.0.0.1", db_port=port, db_connect_timeout=1)
        executor = Executor(settings)
        try:
            started = time.monotonic()
            outcomes = await asyncio.gather(*(executor.open() for _ in range(5)), return_exceptions=True)
            elapsed = time.monotonic() - started
        finally:
            await executor.close()
    assert all(isinstance(outcome, DataSourceUnavailable) for outcome in outcomes), outcomes
    assert elapsed < 2.5, f"5 first requests took {elapsed:.1f}s: their opens were tried one after another"


async def test_a_request_arriving_while_the_pool_closes_is_refused_at_once(
    make_settings: Callable[..., Settings],
) -> None:
    """Lifespan shutdown waits for the requests in flight; one arriving meanwhile is refused now,
    not after they end."""
    executor = Executor(make_settings("mysql"))
    source = await executor.open()
    assert isinstance(source, MysqlDataSource)
    async with source.connection():  # a request in flight: the close waits for it
        closing = asyncio.create_task(executor.close())
        await asyncio.sleep(0.1)
        assert not closing.done()
        with pytest.raises(DataSourceUnavailable, match="shutting down"):
            async with asyncio.timeout(1):
                await executor.open()
    await closing
