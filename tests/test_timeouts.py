"""Nothing waits forever: statements, operations, stalled bodies, idle connections and clients that leave.

Each wait is bounded by a setting; the tests set it short and check the coded answer, and that
the database is left with no statement of ours still running.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from gateway.datasources import create_data_source
from gateway.datasources.protocol import StatementTimeout
from gateway.doors.aiohttp_app import create_app
from gateway.doors.app_keys import EXECUTOR
from gateway.settings import Settings
from tests.conftest import PG, PGBOUNCER, empty_tables, engine, server_env
from tests.graphql_client import error_codes, graphql
from tests.polling import until
from tests.processes import serve, wait_until_up
from tests.stalls import stall

USERS = "{ users { edges { node { displayName } } } }"

# A statement that runs until stopped, in each backend's SQL.
ENDLESS = {
    "sqlite": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) AS n FROM c",
    "postgres": "SELECT pg_sleep(30) AS n",
    "mysql": "SELECT SLEEP(30) AS n",
}


async def test_the_database_stops_a_statement_past_db_statement_timeout(
    backend: str, make_settings: Callable[..., Settings]
) -> None:
    source: Any = create_data_source(make_settings(backend, db_statement_timeout=0.5))
    await source.open()
    try:
        with pytest.raises(StatementTimeout, match="DB_STATEMENT_TIMEOUT"):
            async with asyncio.timeout(10):  # the setting must stop it, long before this
                async with source.connection() as conn:
                    await conn.fetch(ENDLESS[engine(backend)])
        async with source.connection() as conn:  # the pool serves on afterwards
            assert await conn.fetch("SELECT 1 AS ok") == [{"ok": 1}]
    finally:
        await source.close()


async def test_the_longest_timeouts_the_settings_allow_are_taken_by_every_backend(
    backend: str, make_settings: Callable[..., Settings]
) -> None:
    day = 86_400  # the settings' bound: larger values overflowed SQLite's and PostgreSQL's drivers
    settings = make_settings(
        backend, db_statement_timeout=day, db_acquire_timeout=day, db_connect_timeout=day, db_idle_timeout=day
    )
    source: Any = create_data_source(settings)
    await source.open()
    try:
        async with source.connection() as conn:
            assert await conn.fetch("SELECT 1 AS ok") == [{"ok": 1}]
    finally:
        await source.close()


@pytest.fixture
async def locked_users(pg_database: str) -> AsyncIterator[asyncpg.Connection]:
    """A transaction holding an exclusive lock on `users`: every read of it waits."""
    conn = await asyncpg.connect(database=pg_database, ssl=False, **PG)
    tx = conn.transaction()
    await tx.start()
    try:
        yield conn
    finally:
        await tx.rollback()
        await conn.close()


def create_user() -> dict[str, Any]:
    """A createUser operation with an address no other has."""
    return {
        "query": "mutation($input: CreateUserInput!) { createUser(input: $input) { id } }",
        "variables": {"input": {"email": f"{uuid.uuid4().hex}@example.com", "displayName": "Gone"}},
    }


async def test_an_operation_past_request_timeout_is_stopped_with_its_statement(
    backend: str, make_settings: Callable[..., Settings], aiohttp_client: Any
) -> None:
    # One connection, so the request after proves it was stopped and serves again (or replaced).
    settings = make_settings(
        backend, request_timeout=0.5, db_pool_min=0, db_pool_max=1, db_statement_timeout=120
    )
    client = await aiohttp_client(create_app(settings))
    operation = create_user()
    async with stall(
        backend, str(settings.db_sqlite_path) if backend == "sqlite" else settings.db_name
    ) as stalled:
        body = await (await client.post("/graphql", json=operation)).json()
        assert error_codes(body) == ["TIMEOUT"], body
        assert "REQUEST_TIMEOUT" in body["errors"][0]["message"]

        async def stopped() -> bool:
            return not await stalled.running()

        # The cancelled operation cancelled its statement, long before DB_STATEMENT_TIMEOUT.
        await until(stopped, "the gateway's statement to be stopped")
    again = await (await client.post("/graphql", json=operation)).json()
    assert "errors" not in again, again  # not a CONFLICT: the stopped insert wrote nothing


@pytest.mark.parametrize("backend", ["postgres"])
async def test_a_statement_past_db_statement_timeout_is_a_timeout_error(
    backend: str,
    make_settings: Callable[..., Settings],
    aiohttp_client: Any,
    locked_users: asyncpg.Connection,
) -> None:
    app = create_app(make_settings(backend, db_statement_timeout=0.5, db_pool_min=0))
    client = await aiohttp_client(app)
    await locked_users.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
    for query in (USERS, "{ users { edges { node { displayName } } } __schema { queryType { name } } }"):
        body = await graphql(client, query)  # compiled, then interpreted
        assert error_codes(body) == ["TIMEOUT"], body
        assert "DB_STATEMENT_TIMEOUT" in body["errors"][0]["message"]


@pytest.mark.parametrize("backend", ["postgres"])
async def test_a_root_field_past_db_statement_timeout_is_answered_alike_on_both_paths(
    backend: str,
    make_settings: Callable[..., Settings],
    aiohttp_client: Any,
    locked_users: asyncpg.Connection,
) -> None:
    """The field whose statement was stopped is null with a located error; the other root fields
    keep their data (a non-null one stopped nulls it all), as graphql-core answers a resolver's error."""
    settings = make_settings(backend, db_statement_timeout=0.3, db_pool_min=0)
    fast = await aiohttp_client(create_app(settings))
    interpreted = await aiohttp_client(create_app(settings.model_copy(update={"fast_path": False})))
    await empty_tables(fast.app[EXECUTOR].data_source)
    await locked_users.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
    nullable = '{ groups { totalCount } user(id: "VXNlcjox") { id } }'
    non_null = "{ groups { totalCount } users { totalCount } }"
    for query in (nullable, non_null):
        for accept in ("application/json", "application/graphql-response+json"):
            answers = []
            for client in (fast, interpreted):
                response = await client.post("/graphql", json={"query": query}, headers={"Accept": accept})
                answers.append((response.status, await response.json()))
            assert answers[0] == answers[1], (query, accept)
    status, body = answers[0]
    assert (status, body["data"]) == (200, None)
    assert body["errors"][0]["path"] == ["users"]
    assert fast.app[EXECUTOR].fast.answered == 4  # each answered by the compiled statements
    partial = await graphql(fast, nullable)
    assert partial["data"] == {"groups": {"totalCount": 0}, "user": None}
    assert error_codes(partial) == ["TIMEOUT"]
    assert partial["errors"][0]["path"] == ["user"]


def _env(database: str, **extra: str) -> dict[str, str]:
    return {**os.environ, **server_env("postgres", database, DB_POOL_MIN="0", **extra)}


async def test_a_client_that_goes_away_cancels_its_statement(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    kind = engine(backend)
    if kind == "sqlite":
        database = str(tmp_path / "gateway.db")
    else:
        database = request.getfixturevalue("pg_database" if kind == "postgres" else "mysql_database")
    through = request.getfixturevalue("pgbouncer_env") if backend == PGBOUNCER else {}
    # Long timeouts, so that only the client's leaving can stop the statement within the test;
    # one connection, so the request after proves it was stopped and serves again (or replaced).
    env = {
        **os.environ,
        **server_env(
            kind,
            database,
            DB_SQLITE_PATH=database,
            DB_POOL_MIN="0",
            DB_POOL_MAX="1",
            DB_STATEMENT_TIMEOUT="120",
            REQUEST_TIMEOUT="120",
            **through,
        ),
    }
    create = json.dumps(create_user()).encode()
    async with serve("aiohttp", env) as served:
        port = served.port
        await wait_until_up(port, "/readyz", served.process)
        async with stall(kind, database) as stalled:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(
                b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(create), create)
            )
            await writer.drain()
            await until(stalled.running, "the insert to run in the database")
            writer.close()  # the client leaves

            async def stopped() -> bool:
                return not await stalled.running()

            # Long before DB_STATEMENT_TIMEOUT, the only other thing that would stop it.
            await until(stopped, "the statement to be stopped with its request")
        # The same insert again: not a CONFLICT, so the stopped one wrote nothing; and the pool's
        # one connection serves (or was replaced).
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"http://127.0.0.1:{port}/graphql", data=create, headers={"Content-Type": "application/json"}
            ) as response,
        ):
            answer = await response.json()
        assert "errors" not in answer, answer


async def test_idle_and_half_sent_connections_are_closed(pg_database: str) -> None:
    env = _env(pg_database, HTTP_KEEPALIVE_TIMEOUT="1", REQUEST_TIMEOUT="1")
    async with serve("aiohttp", env) as served:
        port = served.port
        for sent in (b"", b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Ty"):
            with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
                sock.sendall(sent)
                assert sock.recv(1024) == b"", sent  # the server closed it; recv did not time out
        stalled = (
            b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n{"
        )
        with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
            sock.sendall(stalled)
            assert sock.recv(1024).startswith(b"HTTP/1.1 408")


async def test_a_sqlite_connection_left_interrupted_is_never_served_again(
    make_settings: Callable[..., Settings],
) -> None:
    # A request cancelled between a cursor's steps leaves the statement open: SQLite then keeps
    # the cancel's interrupt pending, and the connection's next requests failed as TIMEOUTs.
    # (The cursor is opened on the driver's connection here: a cancel's timing is not repeatable.)
    source = create_data_source(make_settings("sqlite", db_pool_min=1, db_pool_max=1))
    await source.open()
    try:
        with pytest.raises(RuntimeError):
            async with source._acquire() as conn:  # type: ignore[attr-defined]
                cursor = await conn.execute("SELECT 1 UNION ALL SELECT 2")
                await cursor.fetchone()
                raise RuntimeError("cancelled between the cursor's steps")
        for _ in range(3):
            await source.ping()  # raised StatementTimeout ("interrupted") three times over
    finally:
        await source.close()
