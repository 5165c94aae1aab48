"""Credentials from AWS Secrets Manager (moto in server mode) for real PostgreSQL and MariaDB users."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from gateway.connect.aws_secret import SecretsManagerCredentials
from gateway.connect.credentials import SecretError, SecretUnreachable
from gateway.datasources import create_data_source
from gateway.doors.aiohttp_app import create_app
from gateway.doors.app_keys import EXECUTOR
from gateway.settings import Settings, SettingsError, load_settings
from tests.aws_servers import AWS_KEYS, moto_endpoint, secrets
from tests.conftest import server_env, sql_source
from tests.db_users import RotatingUser, rotating_user
from tests.opening import connected_user
from tests.polling import until
from tests.processes import free_port, run_gateway, serve
from tests.tls_servers import TlsServer

TLS_BACKENDS = ("postgres", "mysql")
NOT_A_PORT = "'port' is not a port number (1-65535)"
__all__ = ["moto_endpoint", "secrets"]  # the fixtures


@pytest.fixture
def db_user(request: pytest.FixtureRequest, tls_server: Callable[[str], TlsServer]) -> Iterator[RotatingUser]:
    with rotating_user(tls_server(request.node.callspec.params["backend"])) as made:
        yield made


def put_secret(secrets: Any, value: Any) -> str:
    name = f"club/db/{uuid.uuid4().hex[:8]}"
    secrets.create_secret(Name=name, SecretString=value if isinstance(value, str) else json.dumps(value))
    return name


def settings_for(env: dict[str, str]) -> Settings:
    return load_settings(_env_file=None, **{key.lower(): value for key, value in env.items()})


@pytest.mark.parametrize("backend", TLS_BACKENDS)
async def test_the_gateway_serves_with_credentials_from_the_secret_alone(
    backend: str, secrets: Any, moto_endpoint: str, db_user: RotatingUser
) -> None:
    name = put_secret(secrets, db_user.secret())
    env = server_env(
        backend, None, **db_user.env(), **AWS_KEYS, AWS_SECRET_NAME=name, AWS_ENDPOINT_URL=moto_endpoint
    )
    env = {k: v for k, v in env.items() if not k.startswith(("DB_HOST", "DB_PORT", "DB_USER", "DB_NAME"))}
    assert "DB_PASSWORD" not in env
    async with serve("aiohttp", env) as served, aiohttp.ClientSession() as http:
        create = {"query": 'mutation { createUser(input: {email: "a@b.co", displayName: "A"}) { email } }'}
        async with http.post(served.url + "/graphql", json=create) as response:
            assert await response.json() == {"data": {"createUser": {"email": "a@b.co"}}}
        async with http.post(
            served.url + "/graphql", json={"query": "{ users { edges { node { email } } } }"}
        ) as r:
            seen = await r.text()
        async with http.get(served.url + "/readyz") as ready:
            ready_body = await ready.text()
    assert "a@b.co" in seen and ready.status == 200
    for text in (seen, ready_body, served.stderr):
        assert db_user.password not in text


@pytest.mark.parametrize("backend", TLS_BACKENDS)
@pytest.mark.parametrize("shape", ["rds rotation", "rds master user", "seed app"])
async def test_each_secret_shape_connects_as_its_user(
    backend: str, shape: str, secrets: Any, moto_endpoint: str, db_user: RotatingUser
) -> None:
    env = {**db_user.env(), "AWS_ENDPOINT_URL": moto_endpoint}
    if shape == "rds rotation":
        secret: dict[str, Any] = {**db_user.secret(), "port": str(db_user.server.port)}
    elif shape == "rds master user":
        secret = {"username": db_user.name, "password": db_user.password}
        env.update(DB_HOST="localhost", DB_PORT=str(db_user.server.port), DB_NAME=db_user.database)
    else:
        secret = {
            "host": "localhost",
            "port": db_user.server.port,
            "database": db_user.database,
            "user": db_user.name,
            "password": db_user.password,
        }
    # Values in the secret win over the environment's.
    env.setdefault("DB_USER", "someone_else")
    settings = settings_for({**env, "AWS_SECRET_NAME": put_secret(secrets, secret)})
    assert await connected_user(settings) == db_user.name
    assert db_user.password not in repr(settings)


@pytest.mark.parametrize("backend", TLS_BACKENDS)
async def test_rotation_under_load_needs_no_restart(
    backend: str, secrets: Any, moto_endpoint: str, db_user: RotatingUser, aiohttp_client: Any
) -> None:
    name = put_secret(secrets, db_user.secret())
    env = {**db_user.env(), "AWS_SECRET_NAME": name, "AWS_ENDPOINT_URL": moto_endpoint}
    # DB_POOL_MIN=0: idle, every connection closes, and none logged in with the old password is kept.
    settings = settings_for({**env, "DB_POOL_MIN": "0", "DB_POOL_MAX": "10", "DB_IDLE_TIMEOUT": "1"})
    app = create_app(settings)
    client: TestClient = await aiohttp_client(app)
    source = app[EXECUTOR].data_source
    outcomes: list[bool] = []
    stop = asyncio.Event()

    async def ask() -> None:
        response = await client.post(
            "/graphql", json={"query": "{ users(first: 1) { edges { node { id } } } }"}
        )
        body = await response.json()
        outcomes.append(response.status == 200 and "errors" not in body)

    async def steady() -> None:
        while not stop.is_set():
            await ask()
            await asyncio.sleep(0.01)  # pacing the load, not waiting for anything

    workers = [asyncio.create_task(steady()) for _ in range(3)]
    await until(lambda: len(outcomes) >= 6, "the steady load is answered")
    rotated = db_user.secret() | {"password": f"second-{uuid.uuid4().hex}"}
    # No await from here to the secret's update: the load must not open a connection in between.
    db_user.set_password(rotated["password"])
    secrets.put_secret_value(SecretId=name, SecretString=json.dumps(rotated))
    # The server keeps these open, but each of them logged in with the old password.
    logged_in_before = db_user.connection_ids()
    assert logged_in_before

    async def logged_in_since() -> bool:
        return bool(await asyncio.to_thread(db_user.connection_ids) - logged_in_before)

    # Queries waiting on a lock keep their connections, so the burst makes the pool open new ones,
    # which only the new password opens.
    async with db_user.server.locked(db_user.database, "users"):
        burst = asyncio.gather(*(ask() for _ in range(20)))
        await until(logged_in_since, "the pool has logged in with the new password")
    await burst
    stop.set()
    await asyncio.gather(*workers)

    async def only_new_logins() -> bool:
        return not logged_in_before & await asyncio.to_thread(db_user.connection_ids)

    # Without load, idle connections close (PostgreSQL) and the pool made with the old password has
    # retired (MySQL): every connection left logged in with the new password. Then more queries.
    await until(only_new_logins, "every connection made with the old password is closed", timeout=15)
    await asyncio.gather(*(ask() for _ in range(20)))

    assert outcomes and all(outcomes), f"{outcomes.count(False)} of {len(outcomes)} queries failed"
    assert source.auth_retries >= 1  # the rotation was met, not avoided
    provider = source._credentials
    assert isinstance(provider, SecretsManagerCredentials)
    assert provider.fetches == 2  # read at start, re-read once on rejection: no storm of refreshes


@pytest.mark.parametrize("backend", TLS_BACKENDS)
async def test_secrets_manager_down_falls_back_in_development_only(
    backend: str, secrets: Any, db_user: RotatingUser, caplog: pytest.LogCaptureFixture
) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    env = {
        **db_user.env(),
        "AWS_SECRET_NAME": "club/db/anything",
        "AWS_ENDPOINT_URL": down,
        "DB_HOST": "localhost",
        "DB_PORT": str(db_user.server.port),
        "DB_USER": db_user.name,
        "DB_PASSWORD": db_user.password,
        "DB_NAME": db_user.database,
    }
    with caplog.at_level(logging.WARNING):
        assert await connected_user(settings_for(env)) == db_user.name
    assert "AWS Secrets Manager unreachable" in caplog.text
    assert "using the credentials from the environment" in caplog.text

    source = create_data_source(settings_for({**env, "APP_ENV": "production", "AUTH_DISABLED": "true"}))
    with pytest.raises(SecretUnreachable) as refused:
        await source.open()
    await source.close()
    assert "refusing to start (set DB_SECRET_FALLBACK=true" in str(refused.value)
    assert db_user.password not in caplog.text + str(refused.value)


@pytest.mark.parametrize("backend", ["postgres"])
@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("user=club password=hunter2", "is not JSON"),
        ({"username": "club", "pass": "hunter2"}, "has no 'password' key"),
        *(
            ({"username": "club", "password": "hunter2", "port": port}, NOT_A_PORT)
            # 112937 was taken modulo 65536 by the driver, true as port 1, 5432.5 as 5432.
            for port in ("fivefourthreetwo", 112937, 70000, 0, -1, True, 5432.5, "5432.5", None, [5432])
        ),
    ],
)
async def test_a_malformed_secret_is_refused_by_name_and_never_falls_back(
    backend: str, value: Any, message: str, secrets: Any, moto_endpoint: str, db_user: RotatingUser
) -> None:
    name = put_secret(secrets, value)
    env = {
        **db_user.env(),
        "AWS_SECRET_NAME": name,
        "AWS_ENDPOINT_URL": moto_endpoint,
        "DB_SECRET_FALLBACK": "true",
    }
    source = create_data_source(settings_for(env))
    with pytest.raises(SecretError) as refused:
        await source.open()
    await source.close()
    assert str(refused.value).startswith(f"secret {name!r}")
    assert message in str(refused.value)
    assert "hunter2" not in str(refused.value)


def test_an_unknown_secret_names_the_secret_and_region(secrets: Any, moto_endpoint: str) -> None:
    env = server_env(
        "postgres",
        "x",
        DB_USER="x",
        AWS_SECRET_NAME="club/missing",
        AWS_ENDPOINT_URL=moto_endpoint,
        **AWS_KEYS,
    )
    result = run_gateway(["init-db"], env)
    assert result.returncode == 3
    assert (
        "secret 'club/missing' not found in ca-central-1: check AWS_SECRET_NAME and AWS_REGION"
        in result.stderr
    )


async def test_boto3_runs_off_the_event_loop_thread(secrets: Any, moto_endpoint: str) -> None:
    name = put_secret(secrets, {"username": "club", "password": "pw", "host": "h", "dbname": "d"})
    settings = settings_for(
        {"DB_BACKEND": "postgres", "AWS_SECRET_NAME": name, "AWS_ENDPOINT_URL": moto_endpoint}
    )
    provider = SecretsManagerCredentials(settings.model_copy(update={"db_secret_ttl": 0.001}))
    await provider.current()
    calls: list[int] = []
    provider.client.meta.events.register("before-call", lambda **_: calls.append(threading.get_ident()))

    async def read_again() -> bool:
        before = provider.fetches
        await provider.current()
        return provider.fetches > before

    for _ in range(3):
        await until(read_again, "current() reads the secret again, its 1 ms TTL over", interval=0.001)
    assert len(calls) == 3
    assert threading.get_ident() not in calls


def test_iam_auth_requires_tls() -> None:
    with pytest.raises(SettingsError, match="DB_IAM_AUTH=true needs DB_SSL=true"):
        load_settings(_env_file=None, db_backend="postgres", db_user="u", db_name="d", db_iam_auth=True)


@pytest.mark.parametrize("backend", TLS_BACKENDS)
def test_check_connection_uses_the_secret_and_never_prints_the_password(
    backend: str, secrets: Any, moto_endpoint: str, db_user: RotatingUser
) -> None:
    def check(secret: Any) -> subprocess.CompletedProcess[str]:
        env = server_env(backend, None, **db_user.env(), **AWS_KEYS, AWS_ENDPOINT_URL=moto_endpoint)
        env["AWS_SECRET_NAME"] = put_secret(secrets, secret)
        # The secret says where the database is: a DB_HOST or DB_PORT set would win over it.
        del env["DB_HOST"], env["DB_PORT"]
        return run_gateway(["check-connection"], env)

    good = check(db_user.secret())
    assert good.returncode == 0, good.stdout
    assert f"as {db_user.name}" in good.stdout and "credentials: read from secret" in good.stdout
    bad = check({"username": db_user.name, "pwd": db_user.password})
    assert bad.returncode == 17 and "has no 'password' key" in bad.stdout
    bad_port = check(db_user.secret(port=db_user.server.port + 65536))
    assert bad_port.returncode == 17 and NOT_A_PORT in bad_port.stdout
    # Secrets Manager unreachable with DB_SECRET_FALLBACK: the check passes on DB_*, and says so
    # (it said "read from secret", telling a CI job checking its secret that all was well).
    env = server_env(backend, None, **db_user.env(), **AWS_KEYS, AWS_SECRET_NAME="club/any")
    env |= {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}", "DB_SECRET_FALLBACK": "true"}
    secret = db_user.secret()
    env |= {"DB_HOST": secret["host"], "DB_PORT": str(secret["port"]), "DB_USER": db_user.name}
    env |= {"DB_PASSWORD": db_user.password, "DB_NAME": secret["dbname"]}
    fallen_back = run_gateway(["check-connection"], env)
    assert fallen_back.returncode == 0, fallen_back.stdout + fallen_back.stderr
    assert "credentials: DB_USER/DB_PASSWORD: secret 'club/any' unreachable" in fallen_back.stdout
    assert "read from secret" not in fallen_back.stdout
    for result in (good, bad, fallen_back):
        assert db_user.password not in result.stdout + result.stderr


@pytest.mark.parametrize("backend", TLS_BACKENDS)
async def test_new_connections_follow_a_secret_moved_to_another_user_after_its_ttl(
    backend: str, secrets: Any, moto_endpoint: str, tls_server: Callable[[str], TlsServer]
) -> None:
    """The alternating-users rotation: the secret moves to a second user while the first one still
    logs in. Connections opened once DB_SECRET_TTL has passed log in as the secret says."""
    server = tls_server(backend)
    with rotating_user(server) as first, rotating_user(server) as second:
        grant = f"ALL ON DATABASE {first.database} TO {second.name}"
        if backend == "mysql":
            grant = f"ALL ON {first.database}.* TO '{second.name}'@'%'"
        server.admin(f"GRANT {grant}")
        name = put_secret(secrets, first.secret())
        env = {**first.env(), "AWS_SECRET_NAME": name, "AWS_ENDPOINT_URL": moto_endpoint}
        # Idle connections close after 0.3 s: the next query needs a new one.
        settings = settings_for({**env, "DB_POOL_MIN": "0", "DB_IDLE_TIMEOUT": "0.3", "DB_SECRET_TTL": "0.3"})
        source = sql_source(create_data_source(settings))
        await source.open()
        try:
            secrets.put_secret_value(
                SecretId=name, SecretString=json.dumps(second.secret(dbname=first.database))
            )
            await asyncio.sleep(1)
            async with source.connection() as conn:
                who = str((await conn.fetch("SELECT CURRENT_USER AS who"))[0]["who"])
        finally:
            await source.close()
            server.admin(f"REVOKE {grant.replace(' TO ', ' FROM ')}")
    assert who.split("@")[0] == second.name
