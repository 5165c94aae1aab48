"""RDS IAM authentication as far as this machine allows: tokens signed per login, for the right region,
sent only inside verified TLS to fake servers that ask for them in clear (as RDS does).
"""

from __future__ import annotations

import json
import re
import sysconfig
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs

import boto3
import pytest

from gateway.connect.aws_secret import SecretsManagerCredentials
from gateway.connect.credentials import open_credentials
from gateway.connect.tls import TlsError, TlsProblem
from gateway.datasources import create_data_source
from gateway.datasources.protocol import DataSourceUnavailable
from gateway.settings import Settings, SettingsError, load_settings
from tests.aws_servers import AWS_KEYS, moto_endpoint
from tests.clocks import MovedClock, moved_clock
from tests.conftest import server_env, sql_source, unreachable
from tests.fake_servers import fake_mysql, fake_postgres, server_context
from tests.polling import until
from tests.processes import run_gateway_async
from tests.rds_servers import rds_mysql, rds_postgres
from tests.tls_servers import Certificates

__all__ = ["moto_endpoint", "moved_clock"]


@pytest.fixture
def aws_keys(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Dummy AWS keys, and no region or profile from this machine."""
    for key, value in AWS_KEYS.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    (tmp_path / "aws-config").write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))


def settings_for(**env: str) -> Settings:
    return load_settings(_env_file=None, **{key.lower(): value for key, value in env.items()})


def iam_env(backend: str, host: str, port: int, ca_pem: Path, **extra: str) -> dict[str, str]:
    return {
        "DB_BACKEND": backend,
        "DB_HOST": host,
        "DB_PORT": str(port),
        "DB_USER": "club",
        "DB_NAME": "club",
        "DB_SSL": "true",
        "DB_CA_CERT_PATH": str(ca_pem),
        "DB_IAM_AUTH": "true",
        "DB_POOL_MIN": "1",
        **extra,
    }


def query_of(token: str) -> dict[str, str]:
    """The query parameters of a token (a presigned URL without its scheme)."""
    return {key: values[0] for key, values in parse_qs(token.split("?", 1)[1]).items()}


@pytest.mark.usefixtures("aws_keys")
async def test_mysql_sends_the_token_only_inside_tls_to_a_server_asking_for_it_in_clear(
    tls_certs: Certificates,
) -> None:
    async with fake_mysql(tls_certs.ca) as fake:
        env = iam_env("mysql", "localhost", fake.port, tls_certs.ca_pem)
        source = create_data_source(settings_for(**env))
        with pytest.raises(DataSourceUnavailable) as refused:
            await source.open()
        await source.close()
    (login,) = fake.logins
    assert login.tls and login.bytes_before_tls == b""
    assert login.password is not None
    assert login.password.startswith(f"localhost:{fake.port}/?Action=connect&DBUser=club&")
    assert query_of(login.password)["X-Amz-Expires"] == "900"
    assert "Access denied for user (fake server)" in str(refused.value)
    assert login.password not in str(refused.value)


@pytest.mark.usefixtures("aws_keys")
async def test_mysql_sends_nothing_to_a_server_asking_for_the_token_without_offering_tls(
    tls_certs: Certificates,
) -> None:
    async with fake_mysql(tls_certs.ca, offer_tls=False) as fake:
        env = iam_env("mysql", "localhost", fake.port, tls_certs.ca_pem)
        source = create_data_source(settings_for(**env))
        with pytest.raises(TlsError) as refused:
            await source.open()
        await source.close()
    assert refused.value.problem is TlsProblem.SERVER_WITHOUT_TLS
    assert [(login.bytes_before_tls, login.password) for login in fake.logins] == [(b"", None)]


@pytest.mark.usefixtures("aws_keys")
async def test_postgres_sends_the_token_as_the_password_inside_tls(tls_certs: Certificates) -> None:
    async with fake_postgres(tls_certs.ca) as fake:
        env = iam_env("postgres", "localhost", fake.port, tls_certs.ca_pem, DB_CONNECT_TIMEOUT="2")
        source = create_data_source(settings_for(**env))
        with pytest.raises(DataSourceUnavailable):
            await source.open()
        await source.close()
    assert fake.logins
    for login in fake.logins:
        assert login.tls and login.bytes_before_tls == b""
        assert login.password is not None
        assert login.password.startswith(f"localhost:{fake.port}/?Action=connect&DBUser=club&")


@pytest.mark.usefixtures("aws_keys")
async def test_each_login_gets_a_token_signed_at_that_moment() -> None:
    """A pool never reuses a token: one made 15 minutes ago would be refused."""
    host = "club.abc123.ca-central-1.rds.amazonaws.com"
    provider = await open_credentials(settings_for(**iam_env("postgres", host, 5432, Path("unused.pem"))))
    base = await provider.current()
    assert base.password.get_secret_value() == ""  # no dummy password anywhere
    first = (await provider.login(base)).password.get_secret_value()
    signed_at = query_of(first)["X-Amz-Date"]
    await until(
        lambda: datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") > signed_at,
        "the clock has passed the second the first token was signed in",
        interval=0.05,
    )
    second = (await provider.login(base)).password.get_secret_value()
    assert second != first and query_of(second)["X-Amz-Date"] > signed_at
    assert first not in repr(base)


@pytest.mark.usefixtures("aws_keys")
@pytest.mark.parametrize(
    ("env", "host", "region"),
    [
        ({}, "club.abc123.eu-west-3.rds.amazonaws.com", "eu-west-3"),
        ({}, "club-proxy.proxy-abc123.eu-central-1.rds.amazonaws.com", "eu-central-1"),
        ({"AWS_REGION": "us-east-1"}, "club.abc123.eu-west-3.rds.amazonaws.com", "eu-west-3"),
        ({"AWS_DEFAULT_REGION": "us-east-2"}, "db.internal.example", "us-east-2"),
        ({"AWS_REGION": "ap-south-1", "AWS_DEFAULT_REGION": "us-east-2"}, "db.example", "ap-south-1"),
        ({}, "db.internal.example", "ca-central-1"),
    ],
)
async def test_tokens_are_signed_for_the_databases_region(
    env: dict[str, str], host: str, region: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_for(**iam_env("postgres", host, 5432, Path("unused.pem"), **env))
    provider = await open_credentials(settings)
    token = (await provider.login(await provider.current())).password.get_secret_value()
    assert query_of(token)["X-Amz-Credential"].endswith(f"/{region}/rds-db/aws4_request")
    if env.get("AWS_REGION", region) != region:
        assert f"AWS_REGION={env['AWS_REGION']}, but {host} is in {region}" in caplog.text


async def test_a_secret_given_by_arn_is_read_in_the_arns_region(aws_keys: None, moto_endpoint: str) -> None:
    secrets = boto3.client("secretsmanager", region_name="eu-west-1", endpoint_url=moto_endpoint)
    value = {"username": "club", "password": "pw", "host": "db.example", "dbname": "club"}
    arn = secrets.create_secret(Name=f"club/db/{uuid.uuid4().hex[:8]}", SecretString=json.dumps(value))["ARN"]
    settings = settings_for(DB_BACKEND="postgres", AWS_SECRET_NAME=arn, AWS_ENDPOINT_URL=moto_endpoint)
    assert (await SecretsManagerCredentials(settings).current()).user == "club"


async def test_iam_with_a_secret_needs_no_password_in_it(aws_keys: None, moto_endpoint: str) -> None:
    secrets = boto3.client("secretsmanager", region_name="ca-central-1", endpoint_url=moto_endpoint)
    name = f"club/db/{uuid.uuid4().hex[:8]}"
    host = "club.abc123.ca-central-1.rds.amazonaws.com"
    value = {"username": "iam_user", "host": host, "dbname": "club"}
    secrets.create_secret(Name=name, SecretString=json.dumps(value))
    env = {"DB_BACKEND": "postgres", "DB_SSL": "true", "DB_IAM_AUTH": "true", "AWS_SECRET_NAME": name}
    provider = await open_credentials(settings_for(**env, AWS_ENDPOINT_URL=moto_endpoint))
    login = await provider.login(await provider.current())
    assert login.user == "iam_user"
    assert login.password.get_secret_value().startswith(f"{host}:5432/?Action=connect&DBUser=iam_user&")


@pytest.mark.parametrize(
    "env",
    [{"DB_SSL": "true", "DB_SSL_MODE": "disable"}, {"DB_SSL": "false"}],
)
def test_iam_is_refused_without_verified_tls(env: dict[str, str]) -> None:
    with pytest.raises(SettingsError, match="DB_IAM_AUTH=true needs DB_SSL=true with DB_SSL_MODE=verify"):
        settings_for(DB_BACKEND="mysql", DB_USER="u", DB_NAME="d", DB_IAM_AUTH="true", **env)


async def test_check_connection_blames_the_iam_set_up_not_db_password(
    aws_keys: None, tls_certs: Certificates
) -> None:
    async with fake_mysql(tls_certs.ca) as fake:
        iam = iam_env("mysql", "localhost", fake.port, tls_certs.ca_pem)
        env = server_env("mysql", "club", **AWS_KEYS, **iam)
        env = {k: v for k, v in env.items() if k not in ("AWS_REGION", "AWS_PROFILE")}
        env["AWS_DEFAULT_REGION"] = "eu-central-1"
        result = await run_gateway_async(["check-connection"], env)
    output = result.stdout + result.stderr
    assert result.returncode == 13, output
    assert "IAM token: signed for region eu-central-1 (from AWS_DEFAULT_REGION)" in output
    failed = [line.strip() for line in output.splitlines() if "FAILED" in line]
    assert failed == [
        "FAILED (access_denied): MySQL refused: Access denied for user (fake server) "
        "(IAM token signed for region eu-central-1)"
    ], output
    assert "rds-db:connect" in output and "AWSAuthenticationPlugin" in output
    assert "DB_PASSWORD" not in output
    token = fake.logins[0].password
    assert token and token not in output and not re.search(r"X-Amz-Signature=\w", output)


SERVER_SESSION = {"postgres": "SELECT pg_backend_pid() AS id", "mysql": "SELECT CONNECTION_ID() AS id"}


@pytest.mark.usefixtures("aws_keys")
@pytest.mark.parametrize("backend", ["postgres", "mysql"])
async def test_a_busy_connection_outlives_its_token_and_a_new_one_gets_a_fresh_token(
    backend: str, tls_certs: Certificates, request: pytest.FixtureRequest, moved_clock: MovedClock
) -> None:
    """RDS checks a token only at login: a connection in use for 16 minutes keeps serving, and the
    pool neither drops it nor logs in again; the next new connection signs a token of its own."""
    database = request.getfixturevalue("pg_database" if backend == "postgres" else "mysql_database")
    rds_server = rds_postgres if backend == "postgres" else rds_mysql
    async with rds_server(tls_certs.ca, database, moved_clock.now) as rds:
        # No floor of idle connections: DB_IDLE_TIMEOUT applies to this one too.
        env = iam_env(backend, "localhost", rds.port, tls_certs.ca_pem, DB_POOL_MIN="0", DB_POOL_MAX="2")
        source = sql_source(create_data_source(settings_for(**env)))
        await source.open()
        try:

            async def server_session() -> int:
                async with source.connection() as conn:
                    return int((await conn.fetch(SERVER_SESSION[backend]))[0]["id"])

            first = await server_session()
            (login,) = rds.logins
            assert login.accepted
            # A query every 25 s, within DB_IDLE_TIMEOUT (which closes connections left unused).
            for _ in range(39):
                await moved_clock.elapse(25)
                assert await server_session() == first
            assert moved_clock.now() > login.expires_at  # RDS would refuse that token at a login now
            assert len(rds.logins) == 1
            async with source.connection():  # busy: the next request needs a new connection
                second = await server_session()
            assert second != first
            assert [later.accepted for later in rds.logins[1:]] == [True]
            assert rds.logins[1].signed_at >= login.signed_at + timedelta(minutes=16)
            assert await server_session() in (first, second)
        finally:
            await source.close()


# A custom name for the database, an alias (as a CNAME would be) of an RDS endpoint in eu-west-3.
ALIAS = "db.club.test"
RDS_ENDPOINT = "club.abc123.eu-west-3.rds.amazonaws.com"
NSS_WRAPPER = "libnss_wrapper.so"


def resolving(hosts_file: Path) -> dict[str, str]:
    """Environment under which a process's own name lookups read `hosts_file` first (nss_wrapper):
    the machine's resolver and /etc/hosts stay untouched for everything else."""
    # Debian's libnss-wrapper has no soname, so ldconfig (and ctypes.util) do not list it.
    folders = (f"/usr/lib/{sysconfig.get_config_var('MULTIARCH')}", "/usr/lib64", "/usr/lib")
    library = next((Path(f) / NSS_WRAPPER for f in folders if (Path(f) / NSS_WRAPPER).exists()), None)
    if library is None:
        unreachable("libnss-wrapper (scripts/test installs it)", FileNotFoundError(NSS_WRAPPER))
    return {"LD_PRELOAD": str(library), "NSS_WRAPPER_HOSTS": str(hosts_file)}


@pytest.mark.parametrize("backend", ["mysql", "postgres"])
async def test_check_connection_names_a_region_mismatch_behind_a_cname(
    backend: str, aws_keys: None, tls_certs: Certificates, tmp_path: Path
) -> None:
    """DB_HOST names no region, so tokens are signed for AWS_REGION; its canonical name is in another."""
    hosts = tmp_path / "hosts"
    hosts.write_text(f"127.0.0.1 {RDS_ENDPOINT} {ALIAS}\n")  # canonical name first, then the alias
    fake = fake_mysql if backend == "mysql" else fake_postgres
    async with fake(tls_certs.ca, context=server_context(tls_certs.ca, ALIAS)) as server:
        iam = iam_env(backend, ALIAS, server.port, tls_certs.ca_pem, DB_CONNECT_TIMEOUT="2")
        env = server_env(backend, "club", **AWS_KEYS, **iam, **resolving(hosts))
        env = {k: v for k, v in env.items() if k not in ("AWS_DEFAULT_REGION", "AWS_PROFILE")}
        env["AWS_REGION"] = "ca-central-1"
        result = await run_gateway_async(["check-connection"], env)
    output = result.stdout + result.stderr
    assert result.returncode == 13, output
    token = server.logins[0].password
    assert token and "/ca-central-1/rds-db/aws4_request" in query_of(token)["X-Amz-Credential"]
    failed = [line.strip() for line in output.splitlines() if "FAILED" in line]
    assert len(failed) == 1, output
    assert failed[0].endswith(
        f"the IAM token was signed for region ca-central-1 (from AWS_REGION) but {ALIAS} is in eu-west-3"
    ), output
    assert "AWS_REGION=eu-west-3" in output
    assert "DB_PASSWORD" not in output and token not in output
