"""AWS failing the gateway: throttling, internal errors, connections closed mid-answer, no credentials.

moto plays Secrets Manager in server mode; a loopback proxy in front of it spoils the answers a
test asks it to. Transient failures are retried with backoff; once they last, start-up falls
back (or refuses, in production) with a one-line reason; a running gateway keeps the credentials
it read before; check-connection exits 17 naming the cause. boto3 itself is not patched.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.connect.aws_secret import SecretsManagerCredentials
from gateway.connect.credentials import EnvCredentials, SecretUnreachable, open_credentials
from gateway.doors.aiohttp_app import create_app
from gateway.settings import Settings, load_settings
from tests.aws_servers import AWS_KEYS, Fault, FaultProxy, fault_proxy, moto_endpoint, secrets
from tests.conftest import server_env
from tests.db_users import RotatingUser, client_sockets_to, rotating_user
from tests.polling import until
from tests.processes import free_port, run_gateway
from tests.tls_servers import TlsServer

__all__ = ["moto_endpoint", "secrets"]  # the fixtures

QUERY = {"query": "{ users(first: 1) { edges { node { id } } } }"}
FAULTS: dict[Fault, str] = {
    "throttle": "AWS Secrets Manager throttled the request in ca-central-1 (ThrottlingException)",
    "internal": "AWS Secrets Manager failed in ca-central-1 (InternalServiceError, HTTP 500)",
    "close": "AWS Secrets Manager unreachable in ca-central-1 (ConnectionClosedError: the connection "
    "closed before an answer)",
    "truncate": "AWS Secrets Manager unreachable in ca-central-1 (IncompleteAnswer: the answer was cut off)",
}


@pytest.fixture
def aws(moto_endpoint: str) -> Iterator[FaultProxy]:
    with fault_proxy(moto_endpoint) as proxy:
        yield proxy


def put_secret(secrets: Any, value: dict[str, Any]) -> str:
    name = f"club/db/{uuid.uuid4().hex[:8]}"
    secrets.create_secret(Name=name, SecretString=json.dumps(value))
    return name


def settings_for(**env: str) -> Settings:
    return load_settings(_env_file=None, **{key.lower(): value for key, value in env.items()})


def secret_settings(name: str, endpoint: str, **env: str) -> Settings:
    base = {"DB_BACKEND": "postgres", "DB_USER": "fallback", "DB_NAME": "club", "DB_PASSWORD": "env-pw"}
    return settings_for(**base, AWS_SECRET_NAME=name, AWS_ENDPOINT_URL=endpoint, **env)


SECRET = {"username": "club", "password": "pw-from-the-secret", "host": "db.example", "dbname": "club"}


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_a_transient_failure_is_retried_with_backoff(
    fault: Fault, secrets: Any, aws: FaultProxy
) -> None:
    name = put_secret(secrets, SECRET)
    aws.spoil_next(fault, fault)
    provider = SecretsManagerCredentials(secret_settings(name, aws.url))
    credentials = await provider.current()
    assert credentials.password.get_secret_value() == "pw-from-the-secret"
    assert (aws.received, aws.spoiled) == (3, 2)  # two spoiled answers, then the good one


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_a_lasting_failure_at_start_falls_back_in_development_and_refuses_in_production(
    fault: Fault, secrets: Any, aws: FaultProxy, caplog: pytest.LogCaptureFixture
) -> None:
    name = put_secret(secrets, SECRET)
    aws.spoil_all(fault)
    with caplog.at_level(logging.WARNING):
        provider = await open_credentials(secret_settings(name, aws.url))
    assert isinstance(provider, EnvCredentials)
    assert (await provider.current()).user == "fallback"
    assert f"{FAULTS[fault]} after 3 attempts; using the credentials from the environment" in caplog.text
    assert aws.received == 3

    production = secret_settings(name, aws.url, APP_ENV="production", AUTH_DISABLED="true")
    with pytest.raises(SecretUnreachable) as refused:
        await open_credentials(production)
    assert str(refused.value) == (
        f"{FAULTS[fault]} after 3 attempts; refusing to start (set DB_SECRET_FALLBACK=true to use "
        "DB_PASSWORD instead)"
    )


async def test_a_fallback_without_db_user_refuses_naming_the_secret_not_the_login(
    secrets: Any, aws: FaultProxy
) -> None:
    name = put_secret(secrets, SECRET)
    aws.spoil_all("close")
    settings = settings_for(DB_BACKEND="postgres", AWS_SECRET_NAME=name, AWS_ENDPOINT_URL=aws.url)
    with pytest.raises(SecretUnreachable) as refused:
        await open_credentials(settings)
    assert str(refused.value) == (
        f"{FAULTS['close']} after 3 attempts; refusing to start: DB_SECRET_FALLBACK=true, but DB_USER and "
        "DB_NAME to fall back on are not set"
    )


@pytest.fixture
def user(tls_server: Callable[[str], TlsServer]) -> Iterator[RotatingUser]:
    with rotating_user(tls_server("postgres")) as made:
        yield made


async def test_a_running_gateway_keeps_the_credentials_it_read_while_aws_fails(
    secrets: Any, aws: FaultProxy, user: RotatingUser, aiohttp_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Every new connection asks for the credentials again (TTL tiny): AWS failing must not fail them."""
    name = put_secret(secrets, user.secret())
    env = user.env(AWS_SECRET_NAME=name, AWS_ENDPOINT_URL=aws.url, DB_SECRET_TTL="0.001")
    # DB_IDLE_TIMEOUT: connections close when idle, so the queries below need new ones.
    settings = settings_for(**env, DB_POOL_MIN="0", DB_IDLE_TIMEOUT="0.05")
    client: TestClient = await aiohttp_client(create_app(settings))
    for fault in FAULTS:
        aws.spoil_all(fault)
        user.kill_connections()
        await until(
            lambda: not user.connection_ids() and client_sockets_to(user.server.port) == 0,
            "no connection is left: the query needs a new one",
        )
        response = await client.post("/graphql", json=QUERY)
        assert "errors" not in await response.json(), fault
    assert aws.spoiled >= len(FAULTS)
    assert "keeping the credentials read earlier" in caplog.text
    assert user.password not in caplog.text


@pytest.mark.parametrize("fault", list(FAULTS))
def test_check_connection_names_a_lasting_failure_in_one_line_with_exit_code_17(
    fault: Fault, secrets: Any, aws: FaultProxy
) -> None:
    name = put_secret(secrets, SECRET)
    aws.spoil_all(fault)
    env = server_env("postgres", "club", **AWS_KEYS, AWS_SECRET_NAME=name, AWS_ENDPOINT_URL=aws.url)
    env["DB_SECRET_FALLBACK"] = "false"
    result = run_gateway(["check-connection"], env)
    assert result.returncode == 17, result.stdout + result.stderr
    failed = [line.strip() for line in result.stdout.splitlines() if "FAILED" in line]
    assert failed == [
        f"FAILED (secret): {FAULTS[fault]} after 3 attempts; refusing to start (set "
        "DB_SECRET_FALLBACK=true to use DB_PASSWORD instead)"
    ], result.stdout
    assert "Traceback" not in result.stderr


def no_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """No AWS credentials anywhere boto3 looks, and no instance metadata (which is not on loopback)."""
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    (tmp_path / "empty").write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "empty"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "empty"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("proxy down", "(ProxyConnectionError: the proxy cannot be reached: check HTTPS_PROXY and NO_PROXY)"),
        ("not TLS", "(SSLError: TLS to the endpoint failed: check AWS_ENDPOINT_URL and AWS_CA_BUNDLE)"),
        ("credentials endpoint down", "AWS credentials for AWS Secrets Manager could not be fetched"),
        ("no credentials", "no usable AWS credentials for AWS Secrets Manager (NoCredentialsError)"),
    ],
)
async def test_each_way_of_not_reaching_aws_is_named(
    case: str, message: str, secrets: Any, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    name = put_secret(secrets, SECRET)
    endpoint = moto_endpoint
    dead = f"127.0.0.1:{free_port()}"
    if case == "proxy down":
        monkeypatch.setenv("HTTP_PROXY", f"http://{dead}")
        monkeypatch.setenv("NO_PROXY", "")
        monkeypatch.delenv("no_proxy", raising=False)
    elif case == "not TLS":
        endpoint = moto_endpoint.replace("http://", "https://")  # moto speaks plain HTTP
    else:
        no_credentials(monkeypatch, tmp_path)
        if case == "credentials endpoint down":
            monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", f"http://{dead}/credentials")
    production = secret_settings(name, endpoint, APP_ENV="production", AUTH_DISABLED="true")
    with pytest.raises(SecretUnreachable) as refused:
        await open_credentials(production)
    assert message in str(refused.value)
    assert "\n" not in str(refused.value)
