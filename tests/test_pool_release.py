"""Every PostgreSQL connection a request borrows goes back to the pool, clean, however the request
ended: the compiled path's statement, the resolvers' connections, a statement cancelled midway,
and a transaction a caller left open (gateway.datasources.postgres.driver.release)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import asyncpg
import pytest

from gateway.datasources.postgres import PostgresDataSource
from gateway.settings import Settings
from tests.conftest import PG
from tests.polling import until


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    # Two connections: a connection not handed back would leave the next requests waiting.
    return make_settings("postgres", db_pool_min=2, db_pool_max=2, db_acquire_timeout=2)


@pytest.fixture
async def source(settings: Settings) -> AsyncIterator[PostgresDataSource]:
    opened = PostgresDataSource(settings)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


async def _sessions(database: str) -> list[tuple[str, str]]:
    """The (state, query) of each of the gateway's sessions on `database`, seen by the server."""
    admin = await asyncpg.connect(database="postgres", ssl=False, **PG)
    try:
        rows = await admin.fetch(
            "SELECT state, query FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            database,
        )
    finally:
        await admin.close()
    return [(row["state"], row["query"]) for row in rows]


async def test_many_compiled_and_resolver_reads_hand_every_connection_back(
    source: PostgresDataSource, settings: Settings
) -> None:
    assert source.json_sql is not None
    sql = "SELECT " + source.json_sql.object([("n", "?::int")]) + " AS data"

    async def compiled(n: int) -> bytes | None:
        return (await source.fetch_json(sql, [n]))[0]

    async def resolver(n: int) -> int:
        async with source.connection() as conn:
            (row,) = await conn.driver.fetch("SELECT $1::int AS n", n)
            return int(row["n"])

    answers = await asyncio.gather(*(compiled(n) for n in range(100)), *(resolver(n) for n in range(100)))
    assert answers == [f'{{"n" : {n}}}'.encode() for n in range(100)] + list(range(100))
    stats = source.stats()
    assert (stats.pool_size, stats.pool_in_use) == (2, 0)
    assert all(state == "idle" for state, _ in await _sessions(settings.db_name))


async def test_a_cancelled_statement_still_hands_its_connection_back(
    source: PostgresDataSource, settings: Settings
) -> None:
    started = asyncio.Event()

    async def sleeper() -> None:
        async with source.connection() as conn:
            started.set()
            await conn.driver.execute("SELECT pg_sleep(30)")

    tasks = [asyncio.create_task(sleeper()) for _ in range(2)]
    await started.wait()
    await until(lambda: source.stats().pool_in_use == 2, "both connections are running pg_sleep", timeout=5)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    # Both connections come back, their statements cancelled on the server, and serve again.
    await until(lambda: source.stats().pool_in_use == 0, "both connections are back in the pool", timeout=5)
    assert not [q for state, q in await _sessions(settings.db_name) if "pg_sleep" in q and state == "active"]
    answers = await asyncio.gather(*(source.fetch_json("SELECT '1' AS data") for _ in range(4)))
    assert answers == [(b"1", True)] * 4


async def test_a_transaction_left_open_is_rolled_back_before_the_connection_serves_again(
    source: PostgresDataSource, settings: Settings
) -> None:
    async with source.connection() as conn:
        await conn.driver.execute("BEGIN")
        await conn.driver.execute("CREATE TEMPORARY TABLE left_behind (n int)")
    assert source.stats().pool_in_use == 0
    assert all(state == "idle" for state, _ in await _sessions(settings.db_name))
    # Neither connection is inside that transaction: the table it made never existed.
    for _ in range(2):
        async with source.connection() as conn:
            assert await conn.driver.fetchval("SELECT to_regclass('pg_temp.left_behind') IS NULL")
