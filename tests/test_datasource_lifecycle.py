"""A data source's own lifecycle: a closed one opens again and holds nothing while closed, and a
pool retired by a credential rotation is closed and forgotten."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pymysql
import pytest
from moto.server import ThreadedMotoServer

from gateway.datasources.mysql import MysqlDataSource
from gateway.datasources.records import Page
from gateway.datasources.sqlite import SqliteDataSource
from gateway.settings import Settings, load_settings
from tests.conftest import MY, mysql_admin

AWS_KEYS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}


async def eventually(
    condition: Callable[[], bool | Awaitable[bool]], what: str, timeout: float = 5.0
) -> None:
    """Poll `condition` until it holds; fail naming `what` after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        held = condition()
        if not isinstance(held, bool):
            held = await held
        if held:
            return
        if loop.time() > deadline:
            raise AssertionError(f"still not true after {timeout}s: {what}")
        await asyncio.sleep(0.05)


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


@pytest.fixture(scope="module")
def secrets_manager() -> Iterator[str]:
    """AWS Secrets Manager played by moto, as an HTTP server on loopback."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


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
def rotated_user(
    secrets_manager: str, fresh_database: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[RotatedUser]:
    for key, value in AWS_KEYS.items():
        monkeypatch.setenv(key, value)
    client = boto3.client("secretsmanager", region_name="ca-central-1", endpoint_url=secrets_manager)
    suffix = uuid.uuid4().hex[:8]
    user = RotatedUser(f"gw_rot_{suffix}", f"first-{uuid.uuid4().hex}", fresh_database("mysql"), "", client)
    mysql_admin(f"CREATE USER '{user.name}'@'%' IDENTIFIED BY '{user.password}'")
    mysql_admin(f"GRANT ALL ON `{user.database}`.* TO '{user.name}'@'%'")
    user.secret = f"club/db/{suffix}"
    client.create_secret(Name=user.secret, SecretString=user.secret_value())
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
    rotated_user: RotatedUser, secrets_manager: str
) -> None:
    source = MysqlDataSource(rotated_user.settings(secrets_manager))
    await source.open()
    try:
        retired = source._pool
        assert retired is not None
        async with source.connection() as held:  # the old pool's one connection, kept busy
            await rotate_under(source, rotated_user)
            assert await held.fetch("SELECT 1 AS one") == [{"one": 1}]  # still serves its query
            assert not retired.closed
        await eventually(lambda: retired.closed, "the retired pool is closed")
        await eventually(lambda: not source._retiring, "the retired pool's closing is forgotten")
    finally:
        await source.close()


async def test_close_waits_for_the_retired_pool_and_leaves_no_task_behind(
    rotated_user: RotatedUser, secrets_manager: str
) -> None:
    source = MysqlDataSource(rotated_user.settings(secrets_manager))
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
    await eventually(lambda: mysql_connections_of(rotated_user.name) == 0, "MariaDB shows no connection")
