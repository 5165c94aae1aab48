"""LOG_LEVEL=DEBUG prints no secret: no password, IAM token, AWS session token, secret JSON or e-mail.

botocore at DEBUG prints request and response bodies (the secret's JSON), the signed headers (the
session token) and presigned URLs (IAM tokens); aiosqlite prints SQL parameters. Each gateway
below runs with LOG_LEVEL=DEBUG and does the work that would log them.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
import boto3
import pytest

from tests.aws_servers import AWS_KEYS, moto_endpoint
from tests.conftest import server_env
from tests.db_users import RotatingUser, rotating_user
from tests.fake_servers import fake_postgres
from tests.processes import free_port, run_gateway_async, serve
from tests.tls_servers import Certificates, TlsServer

__all__ = ["moto_endpoint"]

EMAIL = "secret.member@club.example"
CREATE = {"query": f'mutation {{ createUser(input: {{email: "{EMAIL}", displayName: "M"}}) {{ id }} }}'}
READ = {"query": "{ users { edges { node { email } } } }"}
NEVER_LOGGED = (EMAIL, AWS_KEYS["AWS_SECRET_ACCESS_KEY"], AWS_KEYS["AWS_SESSION_TOKEN"], "X-Amz-Signature")


def assert_no_secret(log: str, *secrets: str) -> None:
    assert "DEBUG gateway: LOG_LEVEL=DEBUG; botocore, boto3" in log, "the gateway did not log at DEBUG"
    for secret in (*NEVER_LOGGED, *secrets):
        assert secret not in log, f"{secret!r} is in the log"


async def exercise(url: str) -> None:
    """A write carrying an e-mail, a read returning it, and readiness."""
    async with aiohttp.ClientSession() as http:
        async with http.post(url + "/graphql", json=CREATE) as created:
            assert "errors" not in await created.json()
        async with http.post(url + "/graphql", json=READ) as read:
            assert EMAIL in await read.text()
        async with http.get(url + "/readyz") as ready:
            assert ready.status == 200


@pytest.fixture
def user(tls_server: Callable[[str], TlsServer]) -> Iterator[RotatingUser]:
    with rotating_user(tls_server("postgres")) as made:
        yield made


async def test_debug_log_with_secrets_manager_holds_no_secret(
    user: RotatingUser, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in AWS_KEYS.items():
        monkeypatch.setenv(key, value)
    secrets = boto3.client("secretsmanager", region_name="ca-central-1", endpoint_url=moto_endpoint)
    name = f"club/db/{uuid.uuid4().hex[:8]}"
    secret_json = json.dumps(user.secret())
    secrets.create_secret(Name=name, SecretString=secret_json)
    gateway = user.env(AWS_SECRET_NAME=name, AWS_ENDPOINT_URL=moto_endpoint)
    env = server_env("postgres", None, **AWS_KEYS, **gateway)
    env = {k: v for k, v in env.items() if k not in ("DB_HOST", "DB_PORT", "DB_USER", "DB_NAME")}
    env["LOG_LEVEL"] = "DEBUG"
    async with serve("aiohttp", env) as served:
        await exercise(served.url)
    assert_no_secret(served.stderr, user.password, secret_json, '"password"', "SecretString")


async def test_debug_log_with_iam_authentication_holds_no_token(
    tls_certs: Certificates, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with fake_postgres(tls_certs.ca) as fake:
        env = server_env("postgres", "club", **AWS_KEYS, LOG_LEVEL="DEBUG", PORT=str(free_port()))
        env.update(DB_HOST="localhost", DB_PORT=str(fake.port), DB_USER="club", DB_SSL="true")
        env.update(DB_CA_CERT_PATH=str(tls_certs.ca_pem), DB_IAM_AUTH="true", DB_CONNECT_TIMEOUT="2")
        process = await run_gateway_async(["serve"], env)
    assert process.returncode == 3  # the fake refuses every token: serve says so and stops
    tokens = [login.password for login in fake.logins if login.password]
    assert tokens, "the fake server received no token"
    assert_no_secret(process.stderr, *tokens, "Action=connect")


async def test_debug_log_with_sqlite_holds_no_e_mail(tmp_path: Path) -> None:
    env = server_env("sqlite", None, DB_SQLITE_PATH=str(tmp_path / "club.db"), LOG_LEVEL="DEBUG")
    async with serve("aiohttp", env) as served:
        await exercise(served.url)
    assert_no_secret(served.stderr)
