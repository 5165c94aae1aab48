"""Every MariaDB connection a request borrows goes back to the pool, and waiting requests get it:
the compiled path's statement (taken and given back without aiomysql's condition when no one
waits, gateway.datasources.mysql.pool), the resolvers' connections, a statement cancelled midway,
and a transaction a caller left open."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pymysql
import pytest

from gateway.datasources.mysql import MysqlDataSource
from gateway.datasources.protocol import DataSourceUnavailable
from gateway.errors import GatewayError
from gateway.settings import Settings
from tests.conftest import MY, mysql_admin
from tests.polling import until
from tests.tcp_proxy import TcpProxy


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    # Two connections: a connection not handed back, or a waiter not woken, leaves the next
    # requests waiting until DB_ACQUIRE_TIMEOUT. A long statement timeout: only the gateway's
    # KILL QUERY stops a cancelled statement soon.
    return make_settings(
        "mysql", db_pool_min=2, db_pool_max=2, db_acquire_timeout=2, db_statement_timeout=120
    )


@pytest.fixture
async def source(settings: Settings) -> AsyncIterator[MysqlDataSource]:
    opened = MysqlDataSource(settings)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


def _admin(sql: str, *args: object) -> list[tuple[object, ...]]:
    """The rows of one statement run as MariaDB's root, beside the gateway's connections."""
    conn = pymysql.connect(connect_timeout=5, **MY)  # type: ignore[arg-type]
    try:
        with conn.cursor() as cursor:
            cursor.execute(sql, args)
            return list(cursor.fetchall())
    finally:
        conn.close()


def _sessions(database: str) -> list[tuple[int, str, str | None]]:
    """The (id, command, statement) of each of the gateway's sessions on `database`, seen by the server."""
    rows = _admin(
        "SELECT id, command, info FROM information_schema.processlist"
        " WHERE db = %s AND id <> CONNECTION_ID()",
        database,
    )
    return [(int(str(id_)), str(command), None if info is None else str(info)) for id_, command, info in rows]


async def test_many_compiled_and_resolver_reads_hand_every_connection_back(
    source: MysqlDataSource, settings: Settings
) -> None:
    assert source.json_sql is not None
    sql = "SELECT " + source.json_sql.object([("n", "?")]) + " AS data"

    async def compiled(n: int) -> bytes | None:
        return (await source.fetch_json(sql, [n]))[0]

    async def resolver(n: int) -> int:
        async with source.connection() as conn:
            (row,) = await conn.fetch("SELECT ? AS n", (n,))
            return int(row["n"])

    before = source.statements
    # 200 at once on two connections: nearly all of them wait, and each release must wake one.
    answers = await asyncio.gather(*(compiled(n) for n in range(100)), *(resolver(n) for n in range(100)))
    assert answers == [f'{{"n": {n}}}'.encode() for n in range(100)] + list(range(100))
    stats = source.stats()
    assert (stats.pool_size, stats.pool_in_use, stats.pool_waiting) == (2, 0, 0)
    assert source.statements - before == 200
    assert [command for _, command, _ in _sessions(settings.db_name)] == ["Sleep", "Sleep"]


async def test_a_compiled_read_with_a_check_reports_it(source: MysqlDataSource) -> None:
    """The `ok` column a compiled statement adds for a row check is read beside its data."""
    assert await source.fetch_json("SELECT '1' AS data") == (b"1", True)
    assert await source.fetch_json("SELECT '1' AS data, ? > 1 AS ok", [1]) == (b"1", False)
    assert await source.fetch_json("SELECT NULL AS data, ? > 1 AS ok", [2]) == (None, True)


async def test_a_cancelled_compiled_read_is_stopped_on_the_server_and_the_pool_serves_again(
    source: MysqlDataSource, settings: Settings
) -> None:
    # Busy, not sleeping: the server notices a client gone only while it waits on it.
    busy = "SELECT BENCHMARK(2000000000, MD5('x')) AS data"
    reads = [asyncio.create_task(source.fetch_json(busy)) for _ in range(2)]

    def running() -> int:
        return sum(1 for _, _, info in _sessions(settings.db_name) if info and "BENCHMARK" in info)

    await until(lambda: running() == 2, "both connections are running the statement", timeout=5)
    for read in reads:
        read.cancel()
    await asyncio.gather(*reads, return_exceptions=True)
    # aiomysql drops a connection cancelled mid-statement; the server is told to stop it.
    await until(lambda: running() == 0, "the server to stop both statements", timeout=5)
    await until(lambda: source.stats().pool_in_use == 0, "no connection is left in use", timeout=5)
    answers = await asyncio.gather(*(source.fetch_json("SELECT '1' AS data") for _ in range(4)))
    assert answers == [(b"1", True)] * 4


async def test_a_connection_the_server_closed_is_replaced_to_keep_the_minimum(
    source: MysqlDataSource, settings: Settings
) -> None:
    """The compiled read's quick take drops a dead free connection as aiomysql's acquire does, and
    leaves the pool to open a new one rather than run below DB_POOL_MIN."""
    (killed, _, _), _ = _sessions(settings.db_name)
    _admin(f"KILL CONNECTION {killed}")
    pool = source._pool
    assert pool is not None
    # The client sees the close once its reader has it: a private attribute, the only signal.
    await until(lambda: any(c._reader.at_eof() for c in pool._free), "the client to see the close")
    assert await source.fetch_json("SELECT '1' AS data") == (b"1", True)
    assert source.stats().pool_size == 2
    alive = [id_ for id_, _, _ in _sessions(settings.db_name)]
    assert len(alive) == 2 and killed not in alive


async def test_a_transaction_left_open_is_never_served_again(source: MysqlDataSource) -> None:
    async with source.connection() as conn:
        await conn.execute("BEGIN")
        await conn.execute("CREATE TEMPORARY TABLE left_behind (n int)")
        await conn.execute("INSERT INTO left_behind VALUES (1)")
    assert source.stats().pool_in_use == 0
    # Neither connection the pool hands out is inside that transaction, nor has its table.
    for _ in range(4):
        async with source.connection() as conn:
            (row,) = await conn.fetch("SELECT @@in_transaction AS t")
            assert row["t"] == 0
            with pytest.raises(Exception, match="left_behind"):
                await conn.fetch("SELECT n FROM left_behind")
    assert await source.fetch_json("SELECT '1' AS data") == (b"1", True)


async def test_a_non_ascii_password_logs_in(
    make_settings: Callable[..., Settings], mysql_database: str
) -> None:
    # aiomysql sends a password as Latin-1: "pässwörd" was refused (the server hashes UTF-8, as the
    # mysql client sends it) and "€" raised UnicodeEncodeError.
    user, password = "gw_utf8_login", "pässwörd-€"
    mysql_admin(f"DROP USER IF EXISTS '{user}'@'%'")
    mysql_admin(f"CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'")
    try:
        mysql_admin(f"GRANT ALL ON `{mysql_database}`.* TO '{user}'@'%'")
        source = MysqlDataSource(make_settings("mysql", db_user=user, db_password=password))
        await source.open()
        try:
            async with source.connection() as conn:
                assert (await conn.fetch("SELECT CURRENT_USER() AS me"))[0]["me"] == f"{user}@%"
        finally:
            await source.close()
    finally:
        mysql_admin(f"DROP USER IF EXISTS '{user}'@'%'")


async def test_requests_waiting_on_a_full_pool_take_the_places_of_killed_connections(
    source: MysqlDataSource, settings: Settings
) -> None:
    """A connection the server ended frees its place: the requests waiting for one open a new one
    at once, rather than wait out DB_ACQUIRE_TIMEOUT (2 s here) and fail."""

    async def hold() -> None:
        async with source.connection() as conn:
            await conn.fetch("SELECT SLEEP(60) AS s")

    async def wait_for_one() -> int:
        async with source.connection() as conn:
            (row,) = await conn.fetch("SELECT 1 AS one")
            return int(row["one"])

    holders = [asyncio.create_task(hold()) for _ in range(2)]

    def sleeping() -> list[int]:
        return [id_ for id_, _, info in _sessions(settings.db_name) if info and "SLEEP" in info]

    await until(lambda: len(sleeping()) == 2, "both connections run the long statement", timeout=5)
    waiters = [asyncio.create_task(wait_for_one()) for _ in range(2)]
    await until(lambda: source.stats().pool_waiting == 2, "two requests wait for a connection")
    for id_ in sleeping():
        _admin(f"KILL CONNECTION {id_}")
    outcomes = await asyncio.gather(*holders, return_exceptions=True)
    assert all(isinstance(outcome, GatewayError) for outcome in outcomes), outcomes
    async with asyncio.timeout(1):
        assert await asyncio.gather(*waiters) == [1, 1]


async def test_a_request_that_saw_a_free_connection_taken_meanwhile_waits_no_longer_than_the_acquire_timeout(
    make_settings: Callable[..., Settings],
) -> None:
    """Requests that see a free connection while another request opens a new one wait for the
    pool's lock together; the one that finds nothing left gets UNAVAILABLE after DB_ACQUIRE_TIMEOUT."""
    direct = make_settings("mysql")
    proxy = TcpProxy(direct.db_host, direct.database_port)
    await proxy.start()
    settings = make_settings(
        "mysql", db_port=proxy.port, db_pool_min=1, db_pool_max=2, db_acquire_timeout=0.5
    )
    source = MysqlDataSource(settings)
    await source.open()
    first_done, all_done = asyncio.Event(), asyncio.Event()

    async def hold(until_set: asyncio.Event) -> None:
        async with source.connection():
            await until_set.wait()

    first = asyncio.create_task(hold(first_done))
    holders = [first]
    try:
        await until(lambda: source.stats().pool_in_use == 1, "the only connection is in use")
        # A new connection's login is answered late: opening it holds the pool's lock meanwhile.
        proxy.hold_replies_to(settings.db_user.encode(), 1.0)
        holders.append(asyncio.create_task(hold(all_done)))
        await until(lambda: proxy.held == 1, "a second connection is being opened")
        first_done.set()
        await first
        late = [asyncio.create_task(hold(all_done)) for _ in range(2)]
        holders += late
        async with asyncio.timeout(3):
            (refused,), _ = await asyncio.wait(late, return_when=asyncio.FIRST_COMPLETED)
        with pytest.raises(DataSourceUnavailable, match="DB_ACQUIRE_TIMEOUT"):
            refused.result()
    finally:
        first_done.set()
        all_done.set()
        await asyncio.gather(*holders, return_exceptions=True)
        await source.close()
        await proxy.cut()
