"""A data source's own lifecycle: a failed open leaves no connection behind and says why, a closed
one opens again and holds nothing while closed, and a pool retired by a rotation is closed."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pymysql
import pytest

from gateway.datasources import create_data_source
from gateway.datasources.mysql import MysqlDataSource
from gateway.datasources.protocol import DataSourceUnavailable
from gateway.datasources.records import Page
from gateway.datasources.sqlite import SqliteDataSource
from gateway.doors.asgi_app import create_asgi_app
from gateway.settings import Settings, load_settings
from tests.asgi_calls import asgi_post
from tests.aws_servers import moto_endpoint, secrets
from tests.conftest import MY, PG, mysql_admin, pg_admin
from tests.polling import until

SERVERS = ("postgres", "mysql")

__all__ = ["moto_endpoint", "secrets"]  # the fixtures


@dataclass
class DbUser:
    """A database user made for one test, with a password, on a database of its own."""

    backend: str
    name: str
    password: str
    database: str

    def settings(self, make_settings: Callable[..., Settings], **overrides: Any) -> Settings:
        return make_settings(
            self.backend,
            db_user=self.name,
            db_password=self.password,
            db_name=self.database,
            **overrides,
        )


async def pg_in(database: str, sql: str) -> None:
    """Run one statement as the PostgreSQL superuser, in `database`."""
    conn = await asyncpg.connect(database=database, ssl=False, timeout=5, **PG)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture
async def db_user(
    backend: str, fresh_database: Callable[[str], str]
) -> AsyncIterator[Callable[..., Awaitable[DbUser]]]:
    """`await db_user(may_create_tables, connection_limit)`: a new user on a new database of `backend`.

    PostgreSQL: the database belongs to the superuser and nobody else may create in its schema
    public. MariaDB: the user has SELECT, INSERT, UPDATE and DELETE on it, or everything.
    """
    made: list[DbUser] = []

    async def make(may_create_tables: bool, connection_limit: int | None = None) -> DbUser:
        suffix = uuid.uuid4().hex[:8]
        user = DbUser(backend, f"gw_user_{suffix}", f"pw-{uuid.uuid4().hex}", fresh_database(backend))
        made.append(user)
        if backend == "postgres":
            limit = f" CONNECTION LIMIT {connection_limit}" if connection_limit else ""
            pg_admin(f"CREATE ROLE {user.name} LOGIN PASSWORD '{user.password}'{limit}")
            await pg_in(user.database, "REVOKE CREATE ON SCHEMA public FROM PUBLIC")
            if may_create_tables:
                await pg_in(user.database, f"GRANT CREATE ON SCHEMA public TO {user.name}")
        else:
            limit = f" WITH MAX_USER_CONNECTIONS {connection_limit}" if connection_limit else ""
            mysql_admin(f"CREATE USER '{user.name}'@'%' IDENTIFIED BY '{user.password}'{limit}")
            rights = "ALL" if may_create_tables else "SELECT, INSERT, UPDATE, DELETE"
            mysql_admin(f"GRANT {rights} ON `{user.database}`.* TO '{user.name}'@'%'")
        return user

    yield make
    for user in made:
        if backend == "postgres":
            pg_admin(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{user.name}'")
            await pg_in(user.database, f"DROP OWNED BY {user.name}")
            pg_admin(f"DROP ROLE IF EXISTS {user.name}")
        else:
            mysql_admin(f"DROP USER IF EXISTS '{user.name}'@'%'")


async def connections_of(user: DbUser) -> int:
    """How many connections the server has open for `user`."""
    if user.backend == "postgres":
        conn = await asyncpg.connect(database="postgres", ssl=False, timeout=5, **PG)
        try:
            count = await conn.fetchval("SELECT COUNT(*) FROM pg_stat_activity WHERE usename = $1", user.name)
        finally:
            await conn.close()
        return int(count)
    return mysql_connections_of(user.name)


async def _no_connections(user: DbUser) -> bool:
    return await connections_of(user) == 0


def refusal_of(user: DbUser) -> tuple[str, str]:
    """How the failed open must begin, and the server's words for the missing privilege."""
    if user.backend == "postgres":
        return (
            f"cannot apply migrations to PostgreSQL database {user.database} as user {user.name}: ",
            "permission denied for schema public (InsufficientPrivilegeError)",
        )
    return (
        f"cannot apply migrations to MySQL database {user.database} as user {user.name}: ",
        "CREATE command denied to user",
    )


@pytest.mark.parametrize("backend", SERVERS)
async def test_an_open_whose_migrations_are_refused_says_why_and_leaves_no_connection(
    db_user: Callable[..., Awaitable[DbUser]], make_settings: Callable[..., Settings]
) -> None:
    user = await db_user(may_create_tables=False)
    source = create_data_source(user.settings(make_settings, db_pool_min=2))
    with pytest.raises(DataSourceUnavailable) as refused:
        await source.open()
    message = str(refused.value)
    beginning, cause = refusal_of(user)
    assert message.startswith(beginning)
    assert cause in message
    assert "grant the user" in message and "gateway init-db" in message
    assert user.password not in message
    await until(lambda: _no_connections(user), f"{user.name} has no connection left")


@pytest.mark.parametrize("backend", SERVERS)
async def test_a_user_who_may_not_create_tables_opens_once_an_owner_ran_the_migrations(
    db_user: Callable[..., Awaitable[DbUser]], make_settings: Callable[..., Settings]
) -> None:
    # As the README says: "or run `gateway init-db` once as one who can". CREATE TABLE IF NOT EXISTS
    # of the existing schema_migrations was refused to such a user, so it could never start.
    user = await db_user(may_create_tables=False)
    owner = create_data_source(make_settings(user.backend, db_name=user.database))
    await owner.open()
    await owner.close()
    if user.backend == "postgres":
        await pg_in(
            user.database,
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {user.name}",
        )
        await pg_in(user.database, f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {user.name}")
    source = create_data_source(user.settings(make_settings))
    await source.open()
    try:
        assert await source.list_users(Page(first=1)) == []
    finally:
        await source.close()


@pytest.mark.parametrize("backend", SERVERS)
async def test_the_serverless_door_refused_three_times_keeps_no_connection(
    db_user: Callable[..., Awaitable[DbUser]], make_settings: Callable[..., Settings]
) -> None:
    """The ASGI door opens its data source on each request until one succeeds."""
    user = await db_user(may_create_tables=False)
    app = create_asgi_app(user.settings(make_settings))
    beginning, _ = refusal_of(user)
    for _ in range(3):
        status, raw = await asgi_post(app, {"query": "{ users(first: 1) { edges { cursor } } }"})
        body = json.loads(raw)
        assert status == 503
        assert body["errors"][0]["extensions"]["code"] == "UNAVAILABLE"
        assert body["errors"][0]["message"].startswith(beginning)
    await until(lambda: _no_connections(user), f"{user.name} has no connection left")


@pytest.mark.parametrize("backend", SERVERS)
async def test_a_pool_that_cannot_open_all_its_connections_closes_those_it_opened(
    db_user: Callable[..., Awaitable[DbUser]], make_settings: Callable[..., Settings]
) -> None:
    user = await db_user(may_create_tables=True, connection_limit=2)
    source = create_data_source(user.settings(make_settings, db_pool_min=3, db_pool_max=3))
    with pytest.raises(DataSourceUnavailable, match=f"as {user.name}"):
        await source.open()
    await until(lambda: _no_connections(user), f"{user.name} has no connection left")


def files_open_at(path: Path) -> list[str]:
    """What this process holds open of the SQLite database at `path` (the file, its -wal, its -shm)."""
    held = []
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue  # closed since the listing
        if target.startswith(str(path)):
            held.append(target)
    return held


async def test_sqlite_open_of_a_file_that_is_no_database_says_so_at_once_and_holds_no_file(
    make_settings: Callable[..., Settings],
) -> None:
    """Only a locked file is worth waiting DB_ACQUIRE_TIMEOUT for; this one will never be a database."""
    settings = make_settings("sqlite", db_acquire_timeout=60.0)
    settings.db_sqlite_path.write_bytes(b"these are notes, not a database\n" * 200)
    source = SqliteDataSource(settings)
    with pytest.raises(DataSourceUnavailable, match="file is not a database"):
        async with asyncio.timeout(5):
            await source.open()
    assert files_open_at(settings.db_sqlite_path) == []


async def test_sqlite_open_whose_migrations_fail_says_why_and_holds_no_file(
    make_settings: Callable[..., Settings],
) -> None:
    """Another program's database, whose `memberships` table is not ours."""
    settings = make_settings("sqlite")
    other = sqlite3.connect(settings.db_sqlite_path)
    other.execute("CREATE TABLE memberships (id INTEGER PRIMARY KEY, title TEXT)")
    other.commit()
    other.close()
    source = SqliteDataSource(settings)
    with pytest.raises(DataSourceUnavailable) as refused:
        await source.open()
    assert str(refused.value) == (
        f"cannot apply migrations to SQLite database {settings.db_sqlite_path}:"
        " no such column: user_id (OperationalError)"
    )
    assert files_open_at(settings.db_sqlite_path) == []


async def test_a_closed_sqlite_source_opens_again_and_holds_no_file_while_closed(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings("sqlite", db_pool_max=3)
    source = SqliteDataSource(settings)
    await source.open()
    assert await source.list_users(Page(first=1)) == []
    await source.close()
    assert files_open_at(settings.db_sqlite_path) == []

    await source.open()
    try:
        user = await source.create_user("ada@example.com", "Ada")
        assert await source.users_by_ids([user.id]) == [user]
    finally:
        await source.close()
    assert files_open_at(settings.db_sqlite_path) == []


async def test_a_connection_in_use_while_sqlite_closes_is_not_handed_out_after_the_next_open(
    make_settings: Callable[..., Settings],
) -> None:
    source = SqliteDataSource(make_settings("sqlite"))
    await source.open()
    async with source.connection() as conn:
        await conn.fetch("SELECT 1 AS one")
        await source.close()
    await source.open()
    try:
        assert await source.list_users(Page(first=1)) == []
    finally:
        await source.close()


@dataclass
class RotatedUser:
    """A MariaDB user whose password lives in a secret, and can be rotated as RDS rotates it."""

    name: str
    password: str
    database: str
    secret: str
    client: Any

    def secret_value(self) -> str:
        return json.dumps(
            {
                "host": MY["host"],
                "port": MY["port"],
                "username": self.name,
                "password": self.password,
                "dbname": self.database,
            }
        )

    def rotate(self) -> None:
        """A new password, set on the server and then in the secret."""
        self.password = f"second-{uuid.uuid4().hex}"
        mysql_admin(f"ALTER USER '{self.name}'@'%' IDENTIFIED BY '{self.password}'")
        self.client.put_secret_value(SecretId=self.secret, SecretString=self.secret_value())

    def settings(self, endpoint: str) -> Settings:
        return load_settings(
            _env_file=None,
            db_backend="mysql",
            aws_secret_name=self.secret,
            aws_endpoint_url=endpoint,
            db_pool_min=1,
            db_pool_max=4,
        )


@pytest.fixture
def rotated_user(secrets: Any, fresh_database: Callable[[str], str]) -> Iterator[RotatedUser]:
    suffix = uuid.uuid4().hex[:8]
    user = RotatedUser(f"gw_rot_{suffix}", f"first-{uuid.uuid4().hex}", fresh_database("mysql"), "", secrets)
    mysql_admin(f"CREATE USER '{user.name}'@'%' IDENTIFIED BY '{user.password}'")
    mysql_admin(f"GRANT ALL ON `{user.database}`.* TO '{user.name}'@'%'")
    user.secret = f"club/db/{suffix}"
    secrets.create_secret(Name=user.secret, SecretString=user.secret_value())
    yield user
    mysql_admin(f"DROP USER IF EXISTS '{user.name}'@'%'")


def mysql_connections_of(user: str) -> int:
    """How many connections MariaDB has open for `user`."""
    conn = pymysql.connect(host=str(MY["host"]), port=int(str(MY["port"])), user=str(MY["user"]))
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT COUNT(*) FROM information_schema.processlist WHERE user = %s", (user,))
            (count,) = cursor.fetchone()
    finally:
        conn.close()
    return int(count)


async def rotate_under(source: MysqlDataSource, user: RotatedUser) -> None:
    """Rotate the password, then need a new connection: the source must renew its pool to get one."""
    user.rotate()
    async with source.connection() as fresh:
        rows = await fresh.fetch("SELECT CURRENT_USER() AS who")
    assert str(rows[0]["who"]).split("@")[0] == user.name
    assert source.auth_retries == 1


async def test_a_pool_retired_by_rotation_closes_once_released_and_is_forgotten(
    rotated_user: RotatedUser, moto_endpoint: str
) -> None:
    source = MysqlDataSource(rotated_user.settings(moto_endpoint))
    await source.open()
    try:
        retired = source._pool
        assert retired is not None
        async with source.connection() as held:  # the old pool's one connection, kept busy
            await rotate_under(source, rotated_user)
            assert await held.fetch("SELECT 1 AS one") == [{"one": 1}]  # still serves its query
            assert not retired.closed
        await until(lambda: retired.closed, "the retired pool is closed")
        await until(lambda: not source._retiring, "the retired pool's closing is forgotten")
    finally:
        await source.close()


async def test_close_waits_for_the_retired_pool_and_leaves_no_task_behind(
    rotated_user: RotatedUser, moto_endpoint: str
) -> None:
    source = MysqlDataSource(rotated_user.settings(moto_endpoint))
    await source.open()
    retired = source._pool
    assert retired is not None
    async with source.connection() as held:
        await rotate_under(source, rotated_user)
        closing = asyncio.create_task(source.close())
        assert await held.fetch("SELECT 1 AS one") == [{"one": 1}]  # a query finishing during close()
    await closing
    assert retired.closed
    assert not source._retiring
    assert asyncio.all_tasks() == {asyncio.current_task()}
    await until(lambda: mysql_connections_of(rotated_user.name) == 0, "MariaDB shows no connection")
