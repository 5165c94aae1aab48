"""PostgreSQL behind PgBouncer in transaction mode, with DB_STATEMENT_CACHE=false.

The whole backend-parametrized suite also runs through PgBouncer (backend postgres-pgbouncer,
tests/conftest.py), one request at a time. These tests reach what it does not: many operations
at once multiplexed onto two server connections, where a statement prepared on one server
connection would be missing on the next, and a statement cancelled past its timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bench.pgbouncer import pgbouncer
from gateway.datasources import create_data_source
from gateway.datasources.protocol import DataSourceUnavailable
from gateway.doors.aiohttp_app import create_app
from gateway.doors.app_keys import EXECUTOR
from gateway.settings import Settings
from tests.conftest import PG, empty_tables, unreachable
from tests.graphql_client import data, graphql

USER = "query($id: ID!) { user(id: $id) { id displayName email } }"
USER_INTERPRETED = "query($id: ID!) { user(id: $id) { id displayName } __schema { queryType { name } } }"
USERS = "{ users(first: 50) { edges { node { displayName } } } groups { edges { node { name } } } }"
CREATE_USER = "mutation($i: CreateUserInput!) { createUser(input: $i) { id displayName } }"


def profile(name: str) -> dict[str, str]:
    return {"email": f"{name}@example.com", "displayName": name}


@pytest.fixture
def two_server_connections() -> Iterator[int]:
    """A PgBouncer of its own that gives every client the same two server connections."""
    try:
        with pgbouncer(PG["host"], PG["port"], users=(PG["user"],), pool_size=2) as port:
            yield port
    except (OSError, RuntimeError) as exc:
        unreachable("PgBouncer", exc)


def settings(port: int, database: str, statement_cache: bool = False, pool_min: int = 0) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        db_backend="postgres",
        db_host=PG["host"],
        db_port=port,
        db_user=PG["user"],
        db_name=database,
        db_statement_cache=statement_cache,
        db_pool_min=pool_min,
        db_pool_max=10,
    )


@pytest.mark.parametrize("pool_min", [0, 1])  # the first connection made in use, or by the pool
async def test_a_gateway_set_for_a_direct_server_says_what_to_set(
    two_server_connections: int, pg_database: str, pool_min: int
) -> None:
    chosen = settings(two_server_connections, pg_database, statement_cache=True, pool_min=pool_min)
    source = create_data_source(chosen)
    with pytest.raises(DataSourceUnavailable) as refused:
        await source.open()
    message = str(refused.value)
    assert message.endswith("; this is a connection pooler (PgBouncer): set DB_STATEMENT_CACHE=false")


async def test_many_operations_at_once_share_two_server_connections(
    two_server_connections: int, pg_database: str, aiohttp_client: Any
) -> None:
    client: TestClient = await aiohttp_client(create_app(settings(two_server_connections, pg_database)))
    await empty_tables(client.app[EXECUTOR].data_source)
    made = [(await data(client, CREATE_USER, i=profile(f"u{n}")))["createUser"] for n in range(5)]

    async def one(n: int) -> None:
        user = made[n % len(made)]
        if n % 4 == 3:
            body = await graphql(client, CREATE_USER, i=profile(f"x{n}"))
            assert body.get("data") and body["data"]["createUser"]["displayName"] == f"x{n}", body
            return
        query = (USER, USER_INTERPRETED, USERS)[n % 4]
        body = await graphql(client, query, **({} if query == USERS else {"id": user["id"]}))
        assert "errors" not in body, body
        if query != USERS:
            assert body["data"]["user"]["displayName"] == user["displayName"]

    fast = client.app[EXECUTOR].fast
    assert fast is not None
    answered = fast.answered
    await asyncio.gather(*(one(n) for n in range(120)))
    assert fast.answered >= answered + 60  # the compiled path took its share
