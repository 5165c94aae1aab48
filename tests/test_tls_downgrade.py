"""A TLS downgrade on the path to MySQL: no connection sends anything once shown a greeting without TLS.

A loopback proxy stands between the gateway and the TLS-only MariaDB. After the gateway has
started over TLS, the proxy clears the TLS capability flag in the greetings of new connections,
as someone on the network path could. New connections are then forced by load, by idle expiry,
and by a password rotation, on the aiohttp door and on the serverless (ASGI) one. Each must
close without sending a handshake response (no user, no password scramble, no token); the
request answers UNAVAILABLE naming a TLS downgrade, and /readyz says so until TLS is back.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import boto3
import pymysql
import pytest
from aiohttp.test_utils import TestClient

from gateway.doors.aiohttp_app import create_app
from gateway.doors.app_keys import EXECUTOR
from gateway.settings import Settings, load_settings
from tests.aws_servers import AWS_KEYS, moto_endpoint
from tests.conftest import server_env
from tests.db_users import rotating_user
from tests.polling import until
from tests.processes import serve
from tests.tcp_proxy import TcpProxy
from tests.tls_servers import TlsServer

__all__ = ["moto_endpoint"]

QUERY = {"query": "{ users(first: 1) { edges { node { id } } } }"}
IDLE_TIMEOUT = 0.3


@dataclass
class Downgradable:
    """The TLS MariaDB, a database of this test's, and the proxy the gateway reaches it through."""

    server: TlsServer
    database: str
    proxy: TcpProxy

    def env(self, **extra: str) -> dict[str, str]:
        return self.server.env(DB_PORT=str(self.proxy.port), DB_NAME=self.database, **extra)

    def settings(self, **extra: str) -> Settings:
        return load_settings(_env_file=None, **{k.lower(): v for k, v in self.env(**extra).items()})

    def assert_nothing_sent_after_a_stripped_greeting(self) -> None:
        stripped = self.proxy.stripped
        assert stripped, "no new connection met a greeting without TLS"
        assert [bytes(conn.sent) for conn in stripped] == [b""] * len(stripped)


@pytest.fixture
async def path(tls_server: Callable[[str], TlsServer]) -> AsyncIterator[Downgradable]:
    server = tls_server("mysql")
    database = f"downgrade_{uuid.uuid4().hex[:8]}"
    server.create_database(database)
    proxy = TcpProxy("127.0.0.1", server.port)
    await proxy.start()
    try:
        yield Downgradable(server, database, proxy)
    finally:
        await proxy.cut()
        server.admin(f"DROP DATABASE IF EXISTS {database}")


def error_of(body: dict[str, Any]) -> tuple[str, str]:
    """The code and message of a GraphQL answer's only error."""
    (error,) = body["errors"]
    return error["extensions"]["code"], error["message"]


async def ask(client: TestClient) -> dict[str, Any]:
    response = await client.post("/graphql", json=QUERY)
    body: dict[str, Any] = await response.json()
    return body


async def idle_past_the_timeout() -> None:
    """Until every pooled connection has been unused longer than DB_IDLE_TIMEOUT (the condition is time)."""
    loop = asyncio.get_running_loop()
    since = loop.time()
    await until(lambda: loop.time() - since > IDLE_TIMEOUT * 1.5, "the pool's connections are idle too long")


async def readiness(client: TestClient) -> tuple[int, dict[str, Any]]:
    response = await client.get("/readyz")
    return response.status, await response.json()


def queries_waiting_on_a_lock(server: TlsServer, database: str) -> int:
    conn = pymysql.connect(unix_socket=str(server.admin_socket), user="root")
    try:
        with conn.cursor() as cursor:
            cursor.execute(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = %s AND STATE LIKE %s",
                (database, "Waiting for table%"),
            )
            (count,) = cursor.fetchone()
    finally:
        conn.close()
    return int(count)


async def test_a_connection_opened_under_load_sends_nothing_when_tls_is_stripped(
    path: Downgradable, aiohttp_client: Any
) -> None:
    client: TestClient = await aiohttp_client(create_app(path.settings(DB_POOL_MIN="1", DB_POOL_MAX="4")))
    assert "errors" not in await ask(client)
    path.proxy.strip_tls_after()
    async with path.server.locked(path.database, "users"):
        held = asyncio.create_task(ask(client))
        await until(
            lambda: queries_waiting_on_a_lock(path.server, path.database) == 1,
            "a query holds the pool's one connection, waiting on the lock",
        )
        code, message = error_of(await ask(client))  # needs a second connection
    assert "errors" not in await held  # the connection opened over TLS before keeps working
    assert code == "UNAVAILABLE"
    assert message.startswith("TLS downgrade: the MySQL server at localhost:")
    assert "nothing was sent on it, no credentials included" in message
    path.assert_nothing_sent_after_a_stripped_greeting()

    status, body = await readiness(client)
    assert status == 503 and body["reason"].startswith("TLS downgrade"), body
    path.proxy.strip_tls_from = None  # the path is clean again
    status, body = await readiness(client)
    assert (status, body["status"]) == (200, "ok"), body


async def test_a_connection_replacing_an_idle_one_sends_nothing_when_tls_is_stripped(
    path: Downgradable, aiohttp_client: Any
) -> None:
    settings = path.settings(DB_POOL_MIN="1", DB_IDLE_TIMEOUT=str(IDLE_TIMEOUT))
    client: TestClient = await aiohttp_client(create_app(settings))
    assert "errors" not in await ask(client)
    path.proxy.strip_tls_after()
    await idle_past_the_timeout()
    code, message = error_of(await ask(client))
    path.assert_nothing_sent_after_a_stripped_greeting()
    assert (code, message[:13]) == ("UNAVAILABLE", "TLS downgrade")
    status, body = await readiness(client)
    assert status == 503 and body["reason"].startswith("TLS downgrade"), body


async def test_the_pool_made_after_a_rotation_sends_nothing_when_tls_is_stripped(
    path: Downgradable, aiohttp_client: Any, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in AWS_KEYS.items():
        monkeypatch.setenv(key, value)
    secrets = boto3.client("secretsmanager", region_name="ca-central-1", endpoint_url=moto_endpoint)
    with rotating_user(path.server) as user:
        name = f"club/db/{uuid.uuid4().hex[:8]}"
        secrets.create_secret(Name=name, SecretString=json.dumps(user.secret(port=path.proxy.port)))
        env = user.env(AWS_SECRET_NAME=name, AWS_ENDPOINT_URL=moto_endpoint, DB_POOL_MIN="1")
        env["DB_IDLE_TIMEOUT"] = str(IDLE_TIMEOUT)
        app = create_app(load_settings(_env_file=None, **{k.lower(): v for k, v in env.items()}))
        client: TestClient = await aiohttp_client(app)
        assert "errors" not in await ask(client)

        new_password = f"second-{uuid.uuid4().hex}"
        user.set_password(new_password)
        rotated = json.dumps(user.secret(new_password, port=path.proxy.port))
        secrets.put_secret_value(SecretId=name, SecretString=rotated)
        # The next connection (old password, refused) passes untouched; the renewed pool's do not.
        path.proxy.strip_tls_after(clean=1)
        await idle_past_the_timeout()
        code, message = error_of(await ask(client))
        assert (code, message[:13]) == ("UNAVAILABLE", "TLS downgrade")
        path.assert_nothing_sent_after_a_stripped_greeting()
        assert len(path.proxy.connections) >= 3  # start, the refused one, the renewed pool's
        assert app[EXECUTOR].data_source is not None


async def test_the_serverless_door_sends_nothing_when_tls_is_stripped(path: Downgradable) -> None:
    env = server_env("mysql", path.database, **path.env(DB_POOL_MIN="1", DB_IDLE_TIMEOUT=str(IDLE_TIMEOUT)))
    async with serve("asgi", env) as served, aiohttp.ClientSession() as http:
        async with http.post(served.url + "/graphql", json=QUERY) as first:
            assert "errors" not in await first.json()
        path.proxy.strip_tls_after()
        await idle_past_the_timeout()
        async with http.post(served.url + "/graphql", json=QUERY) as refused:
            code, message = error_of(await refused.json())
        async with http.get(served.url + "/readyz") as ready:
            ready_status, ready_body = ready.status, await ready.json()
    assert (code, message[:13]) == ("UNAVAILABLE", "TLS downgrade")
    assert ready_status == 503 and ready_body["reason"].startswith("TLS downgrade")
    path.assert_nothing_sent_after_a_stripped_greeting()
