"""DB_READ_HOST: queries read from a real streaming replica, mutations and their answers from the primary.

The replica is a `pg_basebackup -R` of a throwaway primary (tests/replication.py). Routing is
proven from the database's side: with the replica's replay paused, a write on the primary is
missing from what a query reads (the replica), and present in what a mutation reads back (the
primary). A replica that stops is left out (queries read from the primary, /readyz says
"degraded") and used again once it answers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from gateway.doors.aiohttp_app import create_app
from gateway.doors.app_keys import EXECUTOR
from gateway.settings import Settings
from tests.conftest import unreachable
from tests.graphql_client import data
from tests.polling import until
from tests.replication import DATABASE, ReplicatedPair, replicated_pair

USERS = "{ users(first: 100) { edges { node { email } } } }"
# The same query with a field the compiler leaves to Strawberry: the interpreted path.
USERS_INTERPRETED = "{ users(first: 100) { edges { node { email } } } __schema { queryType { name } } }"
CREATE_USER = "mutation($i: CreateUserInput!) { createUser(input: $i) { id email } }"
CREATE_SESSION = (
    "mutation($i: CreateShootingSessionInput!) { createShootingSession(input: $i)"
    " { id user { email } shots { score } } }"
)


@pytest.fixture(scope="module")
def pair() -> Iterator[ReplicatedPair]:
    try:
        with replicated_pair() as started:
            yield started
    except (OSError, RuntimeError) as exc:
        unreachable("a throwaway primary and replica (initdb, pg_basebackup)", exc)


def replica_settings(pair: ReplicatedPair, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "db_backend": "postgres",
        "db_host": "127.0.0.1",
        "db_port": pair.primary_port,
        "db_user": "postgres",
        "db_name": DATABASE,
        "db_read_host": "127.0.0.1",
        "db_read_port": pair.replica_port,
        "db_pool_min": 1,
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


async def on(port: int, sql: str) -> Any:
    conn = await asyncpg.connect(host="127.0.0.1", port=port, user="postgres", database=DATABASE, ssl=False)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


@pytest.fixture
async def paused(pair: ReplicatedPair) -> AsyncIterator[None]:
    """The replica stops replaying the primary's writes until the test ends, then catches up."""
    await on(pair.replica_port, "SELECT pg_wal_replay_pause()")
    await until(
        lambda: _replay_state(pair, "paused"), "the replica's replay to pause", timeout=10, interval=0.05
    )
    try:
        yield
    finally:
        await on(pair.replica_port, "SELECT pg_wal_replay_resume()")
        await caught_up(pair)


async def _replay_state(pair: ReplicatedPair, state: str) -> bool:
    return bool(await on(pair.replica_port, "SELECT pg_get_wal_replay_pause_state()") == state)


async def caught_up(pair: ReplicatedPair) -> None:
    """Until the replica has replayed everything the primary has written so far."""
    target = await on(pair.primary_port, "SELECT pg_current_wal_insert_lsn()::text")

    async def replayed() -> bool:
        return bool(await on(pair.replica_port, f"SELECT pg_last_wal_replay_lsn() >= '{target}'::pg_lsn"))

    await until(replayed, "the replica to catch up", timeout=20, interval=0.05)


@pytest.fixture
async def gateway(pair: ReplicatedPair, aiohttp_client: Any) -> TestClient:
    client: TestClient = await aiohttp_client(create_app(replica_settings(pair)))
    await caught_up(pair)  # the migrations the gateway applied on the primary
    return client


def emails(body: dict[str, Any]) -> set[str]:
    return {edge["node"]["email"] for edge in body["users"]["edges"]}


async def test_queries_read_the_replica_and_a_mutation_reads_its_own_writes_from_the_primary(
    pair: ReplicatedPair, gateway: TestClient, paused: None
) -> None:
    executor = gateway.app[EXECUTOR]
    fast = executor.fast
    assert fast is not None
    created = await data(gateway, CREATE_USER, i={"email": "stale@example.com", "displayName": "Stale"})
    assert created["createUser"]["email"] == "stale@example.com"
    assert await on(pair.primary_port, "SELECT count(*) FROM users WHERE email = 'stale@example.com'") == 1
    assert await on(pair.replica_port, "SELECT count(*) FROM users WHERE email = 'stale@example.com'") == 0

    # The mutation's checks and its selection read the primary: the user it needs exists only there.
    user_id = created["createUser"]["id"]
    session = {"userId": user_id, "discipline": "10m Air Rifle", "shots": [{"score": 9.5}]}
    made = await data(gateway, CREATE_SESSION, i=session)
    assert made["createShootingSession"]["user"] == {"email": "stale@example.com"}
    assert made["createShootingSession"]["shots"] == [{"score": 9.5}]

    # Queries read the replica, on both paths: the write is not there yet.
    answered = fast.answered
    assert "stale@example.com" not in emails(await data(gateway, USERS))
    assert fast.answered == answered + 1
    assert "stale@example.com" not in emails(await data(gateway, USERS_INTERPRETED))
    assert fast.answered == answered + 1
    assert (await gateway.get("/readyz")).status == 200


async def test_a_query_sees_the_write_once_the_replica_has_replayed_it(
    pair: ReplicatedPair, gateway: TestClient
) -> None:
    await data(gateway, CREATE_USER, i={"email": "later@example.com", "displayName": "Later"})
    await caught_up(pair)
    for query in (USERS, USERS_INTERPRETED):
        assert "later@example.com" in emails(await data(gateway, query))


async def readiness(client: TestClient) -> tuple[int, str]:
    """/readyz's status code and the status in its body."""
    response = await client.get("/readyz")
    body = await response.json()
    return response.status, body["status"]


async def readiness_reason(client: TestClient) -> str:
    reason: str = (await (await client.get("/readyz")).json())["reason"]
    return reason


async def test_a_stopped_replica_leaves_queries_to_the_primary_and_is_used_again_once_back(
    pair: ReplicatedPair, gateway: TestClient
) -> None:
    assert await readiness(gateway) == (200, "ok")
    await data(gateway, USERS)  # a replica connection in the pool, about to be cut
    pair.stop_replica()
    try:
        await data(gateway, CREATE_USER, i={"email": "down@example.com", "displayName": "Down"})
        for query in (USERS, USERS_INTERPRETED):
            assert "down@example.com" in emails(await data(gateway, query))  # from the primary
        assert await readiness(gateway) == (200, "degraded")
        assert f"read replica 127.0.0.1:{pair.replica_port} unavailable" in await readiness_reason(gateway)
    finally:
        pair.start_replica()
    await until(lambda: _ready_ok(gateway), "the replica to be used again", timeout=20, interval=0.1)
    await caught_up(pair)
    await _reads_from_the_replica_again(pair, gateway, "back@example.com")


async def _ready_ok(client: TestClient) -> bool:
    return await readiness(client) == (200, "ok")


async def _reads_from_the_replica_again(pair: ReplicatedPair, gateway: TestClient, email: str) -> None:
    await on(pair.replica_port, "SELECT pg_wal_replay_pause()")
    try:
        await until(lambda: _replay_state(pair, "paused"), "the replica's replay to pause", interval=0.05)
        await data(gateway, CREATE_USER, i={"email": email, "displayName": "Back"})
        for query in (USERS, USERS_INTERPRETED):
            assert email not in emails(await data(gateway, query))
    finally:
        await on(pair.replica_port, "SELECT pg_wal_replay_resume()")
        await caught_up(pair)


async def test_a_replica_down_at_start_up_is_no_failed_start(
    pair: ReplicatedPair, aiohttp_client: Callable[..., Any]
) -> None:
    pair.stop_replica()
    try:
        client: TestClient = await aiohttp_client(create_app(replica_settings(pair)))
        assert await readiness(client) == (200, "degraded")
        await data(client, CREATE_USER, i={"email": "early@example.com", "displayName": "Early"})
        for query in (USERS, USERS_INTERPRETED):
            assert "early@example.com" in emails(await data(client, query))
    finally:
        pair.start_replica()
    await until(lambda: _ready_ok(client), "the replica to be used again", timeout=20, interval=0.1)
    await caught_up(pair)
    await _reads_from_the_replica_again(pair, client, "back-at-start@example.com")


async def test_a_replica_that_stops_answering_leaves_queries_to_the_primary(
    pair: ReplicatedPair, aiohttp_client: Callable[..., Any]
) -> None:
    # DB_CONNECT_TIMEOUT short: a new replica connection waits that long for an answer.
    client: TestClient = await aiohttp_client(create_app(replica_settings(pair, db_connect_timeout=1)))
    await caught_up(pair)
    await data(client, USERS)  # an idle replica connection in the pool, about to be cut
    with pair.replica_silent():
        await data(client, CREATE_USER, i={"email": "silent@example.com", "displayName": "Silent"})
        for query in (USERS, USERS_INTERPRETED):
            assert "silent@example.com" in emails(await data(client, query))  # from the primary
        assert await readiness(client) == (200, "degraded")
    await until(lambda: _ready_ok(client), "the replica to be used again", timeout=20, interval=0.1)


@pytest.mark.parametrize("statement_cache", [True, False], ids=["direct", "pooler"])
async def test_a_replica_frozen_mid_connection_leaves_queries_to_the_primary_within_the_statement_timeout(
    pair: ReplicatedPair, aiohttp_client: Callable[..., Any], statement_cache: bool
) -> None:
    # A frozen host: the pool's open connections to it never answer, not even with the server's own
    # statement timeout. Each query waited REQUEST_TIMEOUT (a 408), and /readyz said "ok".
    # REQUEST_TIMEOUT well past the statement timeout: a read left waiting on the replica gets a 408.
    settings = replica_settings(
        pair, db_statement_timeout=2, db_statement_cache=statement_cache, request_timeout=8
    )
    client: TestClient = await aiohttp_client(create_app(settings))
    await caught_up(pair)
    await data(
        client, CREATE_USER, i={"email": f"frozen-{int(statement_cache)}@example.com", "displayName": "F"}
    )
    await caught_up(pair)
    for query in (USERS, USERS_INTERPRETED):
        await data(client, query)  # replica connections open in the pool
    with pair.replica_frozen():
        for query in (USERS, USERS_INTERPRETED):
            assert f"frozen-{int(statement_cache)}@example.com" in emails(await data(client, query))
        assert await readiness(client) == (200, "degraded")
    await until(lambda: _ready_ok(client), "the replica to be used again", timeout=20, interval=0.1)
