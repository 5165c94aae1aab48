"""Rotation's in-between moments: the database has the new password before the secret's AWSCURRENT does.

The AWS rotation lambda runs createSecret (new version staged AWSPENDING), setSecret (the
database's password changed to it), testSecret, then finishSecret (AWSCURRENT moved to it).
Connections opened between setSecret and finishSecret must log in with AWSPENDING's password;
someone rotating by hand may change the database a moment before the secret. Both are played
here on the TLS-only servers, with moto in server mode, connections killed in between.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.doors.aiohttp_app import create_app
from gateway.settings import Settings, load_settings
from tests.aws_servers import fault_proxy, moto_endpoint, secrets
from tests.db_users import RotatingUser, client_sockets_to, rotating_user
from tests.polling import until
from tests.tls_servers import TlsServer

__all__ = ["moto_endpoint", "secrets"]  # the fixtures

TLS_BACKENDS = ("postgres", "mysql")
QUERY = {"query": "{ users(first: 1) { edges { node { id } } } }"}


@pytest.fixture
def user(request: pytest.FixtureRequest, tls_server: Callable[[str], TlsServer]) -> Iterator[RotatingUser]:
    with rotating_user(tls_server(request.node.callspec.params["backend"])) as made:
        yield made


def settings_for(user: RotatingUser, secret: str, endpoint: str) -> Settings:
    env = user.env(AWS_SECRET_NAME=secret, AWS_ENDPOINT_URL=endpoint, DB_POOL_MIN="1", DB_POOL_MAX="4")
    return load_settings(_env_file=None, **{key.lower(): value for key, value in env.items()})


async def answered(client: TestClient, count: int) -> list[str]:
    """`count` queries at once; the error of each that failed ("" for those answered)."""

    async def one() -> str:
        response = await client.post("/graphql", json=QUERY)
        body = await response.json()
        return "" if response.status == 200 and "errors" not in body else json.dumps(body)

    return list(await asyncio.gather(*(one() for _ in range(count))))


async def kill_every_connection(user: RotatingUser) -> None:
    """End the user's connections on the server, and wait until this process has closed its side.

    A pool may open new ones meanwhile (asyncpg keeps its minimum): those are the new logins.
    """
    killed = user.connection_ids()
    user.kill_connections()

    def ended() -> bool:
        now = user.connection_ids()
        return not killed & now and client_sockets_to(user.server.port) == len(now)

    await until(ended, "the killed connections are closed on both sides")


@pytest.mark.parametrize("backend", TLS_BACKENDS)
async def test_connections_opened_between_set_secret_and_finish_secret_log_in_with_awspending(
    backend: str, user: RotatingUser, secrets: Any, moto_endpoint: str, aiohttp_client: Any
) -> None:
    name = f"club/db/{uuid.uuid4().hex[:8]}"
    first_version = secrets.create_secret(Name=name, SecretString=json.dumps(user.secret()))["VersionId"]
    client: TestClient = await aiohttp_client(create_app(settings_for(user, name, moto_endpoint)))
    assert await answered(client, 3) == ["", "", ""]

    # createSecret and setSecret: the new password is staged AWSPENDING and set in the database.
    token = str(uuid.uuid4())
    new_password = f"second-{uuid.uuid4().hex}"
    secrets.put_secret_value(
        SecretId=name,
        ClientRequestToken=token,
        SecretString=json.dumps(user.secret(new_password)),
        VersionStages=["AWSPENDING"],
    )
    user.set_password(new_password)
    await kill_every_connection(user)
    # Every query needs a new connection now; AWSCURRENT still holds the old password.
    assert await answered(client, 6) == [""] * 6
    assert user.connection_ids(), "connections logged in with AWSPENDING's password"

    # finishSecret: AWSCURRENT moves to the new version.
    secrets.update_secret_version_stage(
        SecretId=name, VersionStage="AWSCURRENT", MoveToVersionId=token, RemoveFromVersionId=first_version
    )
    await kill_every_connection(user)
    assert await answered(client, 6) == [""] * 6


@pytest.mark.parametrize("backend", TLS_BACKENDS)
async def test_a_password_changed_in_the_database_before_the_secret_waits_for_the_secret(
    backend: str, user: RotatingUser, secrets: Any, moto_endpoint: str, aiohttp_client: Any
) -> None:
    """A rotation by hand: the request that needs a connection backs off and reads the secret again."""
    name = f"club/db/{uuid.uuid4().hex[:8]}"
    secrets.create_secret(Name=name, SecretString=json.dumps(user.secret()))
    with fault_proxy(moto_endpoint) as aws:  # passes everything through; counts the reads
        client: TestClient = await aiohttp_client(create_app(settings_for(user, name, aws.url)))
        assert await answered(client, 1) == [""]
        new_password = f"second-{uuid.uuid4().hex}"
        user.set_password(new_password)
        await kill_every_connection(user)
        reads_before = aws.received
        waiting = asyncio.create_task(answered(client, 1))
        # The refused login made the gateway read the secret again (AWSCURRENT, then AWSPENDING):
        # both still hold nothing new. Only now is the secret updated.
        await until(lambda: aws.received >= reads_before + 2, "the gateway has read the secret again")
        assert not waiting.done()
        await asyncio.to_thread(
            secrets.put_secret_value, SecretId=name, SecretString=json.dumps(user.secret(new_password))
        )
        assert await waiting == [""]
