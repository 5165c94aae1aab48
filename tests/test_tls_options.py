"""TLS choices a managed database needs: trusted CAs from a file, the system or both, CA bundles,
client certificates, the TLS 1.2 floor, encrypted keys, and the host name errors speak of.
"""

from __future__ import annotations

import base64
import json
import logging
import ssl
import subprocess
import sys
import uuid
import warnings
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from gateway.connect.tls import TlsError, TlsProblem, client_ssl_context
from gateway.datasources import create_data_source
from gateway.settings import Settings, SettingsError, load_settings
from tests.aws_servers import moto_endpoint, secrets
from tests.conftest import server_env, sql_source
from tests.db_users import RotatingUser, client_sockets_to, rotating_user
from tests.fake_servers import fake_postgres, server_context
from tests.opening import connected_user, tls_refusal
from tests.polling import until
from tests.processes import run_gateway
from tests.tls_servers import MTLS_USER, Certificates, TlsServer

__all__ = ["moto_endpoint", "secrets"]  # the fixtures

TLS_BACKENDS = ("postgres", "mysql")


def settings_for(env: dict[str, str]) -> Settings:
    return load_settings(_env_file=None, **{key.lower(): value for key, value in env.items() if value})


# -- where trusted CAs come from --------------------------------------------------------


@pytest.fixture
def system_trusts_the_test_ca(tls_certs: Certificates, monkeypatch: pytest.MonkeyPatch) -> None:
    """The "system trust store" holds the test CA, as it holds the ACM CA an RDS Proxy presents."""
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_certs.ca_pem))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)


@pytest.mark.usefixtures("system_trusts_the_test_ca")
@pytest.mark.parametrize("backend", TLS_BACKENDS)
async def test_ca_mode_both_trusts_the_system_store_and_the_ca_file(
    backend: str, tls_server: Callable[..., TlsServer]
) -> None:
    server = tls_server(backend)
    # The CA file holds another CA only (an RDS bundle, say): alone, it does not trust this server.
    env = server.env(DB_CA_CERT_PATH=str(server.ca_pem.parent / "other-ca.pem"))
    assert (await tls_refusal(settings_for(env))).problem is TlsProblem.UNTRUSTED_SERVER
    assert await connected_user(settings_for({**env, "DB_SSL_CA_MODE": "both"})) == "club"
    assert await connected_user(settings_for({**env, "DB_SSL_CA_MODE": "system"})) == "club"


@pytest.mark.parametrize("backend", TLS_BACKENDS)
async def test_ca_mode_file_does_not_trust_the_system_store(
    backend: str,
    tls_server: Callable[..., TlsServer],
    tls_certs: Certificates,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = tls_server(backend)
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_certs.other_ca_pem))  # the system trusts another CA
    env = server.env(DB_SSL_CA_MODE="file")
    assert await connected_user(settings_for(env)) == "club"
    refused = await tls_refusal(settings_for({**env, "DB_SSL_CA_MODE": "system"}))
    assert refused.problem is TlsProblem.UNTRUSTED_SERVER


@pytest.mark.parametrize("mode", ["file", "both"])
def test_a_ca_mode_that_needs_a_ca_file_refuses_to_start_without_one(mode: str) -> None:
    with pytest.raises(SettingsError, match=f"DB_SSL_CA_MODE={mode} needs DB_CA_CERT_PATH or DB_CA_CERT"):
        settings_for({"DB_BACKEND": "mysql", "DB_USER": "u", "DB_NAME": "d", "DB_SSL_CA_MODE": mode})


@pytest.mark.parametrize("ca", ["none", "system", "both"])
def test_verify_ca_with_the_system_store_refuses_to_start(ca: str) -> None:
    # The chain alone, from the system's CAs: a certificate anyone can get for their own domain
    # would pass for the database (and receive its password, or an IAM token).
    env = {
        "DB_BACKEND": "postgres",
        "DB_USER": "u",
        "DB_NAME": "d",
        "DB_SSL": "true",
        "DB_SSL_MODE": "verify-ca",
    }
    if ca != "none":
        env |= {"DB_SSL_CA_MODE": ca, "DB_CA_CERT": base64.b64encode(b"-").decode()}
    with pytest.raises(SettingsError, match="DB_SSL_MODE=verify-ca trusts the CA alone"):
        settings_for(env)
    # With the provider's CA alone it stands (the CA is read when connecting).
    settings_for({**env, "DB_SSL_CA_MODE": "file", "DB_CA_CERT": base64.b64encode(b"-").decode()})


@pytest.mark.parametrize("backend", TLS_BACKENDS)
async def test_a_ca_file_replaced_on_disk_is_trusted_by_the_next_new_connection(
    backend: str, tls_server: Callable[..., TlsServer], tmp_path: Path
) -> None:
    """A CA rotation: the file is replaced while the gateway runs; new connections read it again."""
    server = tls_server(backend)
    right, other = server.ca_pem.read_bytes(), (server.ca_pem.parent / "other-ca.pem").read_bytes()
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(right)
    source = sql_source(
        create_data_source(settings_for(server.env(DB_CA_CERT_PATH=str(ca_file), DB_POOL_MIN="1")))
    )
    await source.open()
    try:
        async with source.connection() as held:  # so that the next connection is a new one
            await held.fetch("SELECT 1 AS one")
            ca_file.write_bytes(other)
            with pytest.raises(TlsError) as refused:
                async with source.connection():
                    pass
            assert refused.value.problem is TlsProblem.UNTRUSTED_SERVER
            ca_file.write_bytes(other + right)
            async with source.connection() as new:
                assert await new.fetch("SELECT 2 AS two") == [{"two": 2}]
    finally:
        await source.close()


# -- CA bundles ------------------------------------------------------------------------------


def short_lived_ca(folder: Path, days: int) -> tuple[Path, str]:
    """A self-signed CA certificate valid for `days` more days; its path and common name."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = f"Short-lived CA {uuid.uuid4().hex[:6]}"
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = folder / "short-lived-ca.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path, name


@pytest.mark.parametrize("backend", TLS_BACKENDS)
def test_a_bundle_of_several_cas_connects_and_check_connection_shows_the_soonest_expiry(
    backend: str, tls_server: Callable[..., TlsServer], tmp_path: Path
) -> None:
    server = tls_server(backend)
    short, short_name = short_lived_ca(tmp_path, days=20)
    bundle = tmp_path / "bundle.pem"
    # The server's CA first, as in a regional RDS bundle where any may come first.
    other = server.ca_pem.parent / "other-ca.pem"
    bundle.write_bytes(server.ca_pem.read_bytes() + other.read_bytes() + short.read_bytes())
    env = server_env(backend, None, **server.env(DB_CA_CERT_PATH=str(bundle)))
    result = run_gateway(["check-connection", "--json"], env)
    report = json.loads(result.stdout)
    assert result.returncode == 0, report
    assert report["ca"]["certificates"] == 3
    assert report["ca"]["subject"] == short_name
    assert report["ca"]["days_left"] in (19, 20)


def expired_copy_of(ca: trustme.CA) -> bytes:
    """`ca` as a CA file that has not been updated: the same name and key, its validity ended yesterday."""
    current = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
    key = serialization.load_pem_private_key(ca.private_key_pem.bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey)
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(current.subject)
        .issuer_name(current.subject)
        .public_key(current.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=30))
        .not_valid_after(now - timedelta(days=1))
    )
    for extension in current.extensions:
        builder = builder.add_extension(extension.value, extension.critical)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


@pytest.mark.parametrize("backend", TLS_BACKENDS)
async def test_an_expired_ca_in_the_bundle_is_named_not_the_servers_valid_certificate(
    backend: str, tls_server: Callable[..., TlsServer], tls_certs: Certificates, tmp_path: Path
) -> None:
    """OpenSSL says "certificate has expired" of a CA too: the fix is a new CA file, not the server."""
    server = tls_server(backend)
    bundle = tmp_path / "bundle.pem"
    # Another CA still valid, as in a bundle: the start-up check passes (not every CA has expired).
    bundle.write_bytes(expired_copy_of(tls_certs.ca) + (server.ca_pem.parent / "other-ca.pem").read_bytes())
    env = server.env(DB_CA_CERT_PATH=str(bundle))
    error = await tls_refusal(settings_for(env))
    assert error.problem is TlsProblem.CA_INVALID
    assert f"DB_CA_CERT_PATH {bundle}: the CA certificate " in str(error)
    assert "download the current CA certificate from your database provider" in str(error)
    assert "the server must renew it" not in str(error)
    result = run_gateway(["check-connection", "--json"], server_env(backend, None, **env))
    report = json.loads(result.stdout)
    assert (result.returncode, report["failure"]) == (10, "ca"), report
    assert "the server must renew it" not in report["message"]


# -- client certificates -------------------------------------------------------------------


@pytest.fixture
def mtls_env(
    tls_server: Callable[..., TlsServer], tls_certs: Certificates
) -> Callable[[str], dict[str, str]]:
    def env(backend: str) -> dict[str, str]:
        cert, key = tls_certs.client_pair(MTLS_USER)
        server = tls_server(backend)
        return server.env(DB_USER=MTLS_USER, DB_NAME=MTLS_USER, DB_SSL_CERT=str(cert), DB_SSL_KEY=str(key))

    return env


@pytest.mark.parametrize("backend", TLS_BACKENDS)
async def test_a_user_who_needs_a_client_certificate_connects_with_one_only(
    backend: str, mtls_env: Callable[[str], dict[str, str]]
) -> None:
    env = mtls_env(backend)
    assert await connected_user(settings_for(env)) == MTLS_USER
    without = {k: v for k, v in env.items() if k not in ("DB_SSL_CERT", "DB_SSL_KEY")}
    source = create_data_source(settings_for(without))
    with pytest.raises(Exception) as refused:
        await source.open()
    await source.close()
    assert "cannot connect" in str(refused.value) and MTLS_USER in str(refused.value)


def encrypted_key_pair(tls_certs: Certificates, tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tls_certs.client_pair(MTLS_USER)
    private = serialization.load_pem_private_key(key.read_bytes(), password=None)
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"passphrase"),
        )
    )
    return cert, encrypted


def test_an_encrypted_client_key_is_refused_by_name(tls_certs: Certificates, tmp_path: Path) -> None:
    cert, key = encrypted_key_pair(tls_certs, tmp_path)
    settings = settings_for(
        {"DB_BACKEND": "mysql", "DB_USER": "u", "DB_NAME": "d", "DB_SSL": "true"}
        | {"DB_SSL_CERT": str(cert), "DB_SSL_KEY": str(key)}
    )
    with pytest.raises(TlsError) as refused:
        client_ssl_context(settings)
    assert refused.value.problem is TlsProblem.CLIENT_CERT
    assert str(refused.value).startswith(f"DB_SSL_KEY {key} is encrypted with a passphrase")


def test_an_encrypted_client_key_never_makes_openssl_prompt_on_the_terminal(
    tls_server: Callable[..., TlsServer], tls_certs: Certificates, tmp_path: Path
) -> None:
    """check-connection on a terminal (a pseudo-terminal from `script`) answers at once, asking nothing."""
    cert, key = encrypted_key_pair(tls_certs, tmp_path)
    env = server_env("mysql", None, **tls_server("mysql").env(DB_SSL_CERT=str(cert), DB_SSL_KEY=str(key)))
    command = f"{sys.executable} -m gateway check-connection"
    # stdin is the terminal too: a prompt would wait for it until the timeout fails the test.
    result = subprocess.run(
        ["script", "--quiet", "--return", "--command", command, "/dev/null"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 10, result.stdout
    assert "pass phrase" not in result.stdout.lower()
    assert f"FAILED (ca): DB_SSL_KEY {key} is encrypted with a passphrase" in result.stdout


# -- the TLS 1.2 floor ------------------------------------------------------------------------


def tls_version_server_context(tls_certs: Certificates, version: ssl.TLSVersion) -> ssl.SSLContext:
    context = server_context(tls_certs.ca)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.1 is deprecated: that is the point
        context.minimum_version = context.maximum_version = version
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    return context


async def test_a_server_speaking_only_tls_1_1_is_refused_and_tls_1_2_is_accepted(
    tls_certs: Certificates, tmp_path: Path
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old = ssl.TLSVersion.TLSv1_1
    async with fake_postgres(tls_certs.ca, tls_version_server_context(tls_certs, old)) as fake:
        env = {"DB_BACKEND": "postgres", "DB_HOST": "localhost", "DB_PORT": str(fake.port), "DB_USER": "club"}
        env |= {"DB_NAME": "club", "DB_PASSWORD": "pw", "DB_SSL": "true"}
        env["DB_CA_CERT_PATH"] = str(tls_certs.ca_pem)
        error = await tls_refusal(settings_for(env))
    assert error.problem is TlsProblem.HANDSHAKE
    assert "check that the server accepts TLS 1.2 or newer" in str(error)
    assert [login.password for login in fake.logins] == [None]

    tls_1_2 = tls_version_server_context(tls_certs, ssl.TLSVersion.TLSv1_2)
    async with fake_postgres(tls_certs.ca, tls_1_2) as fake:
        source = create_data_source(settings_for({**env, "DB_PORT": str(fake.port)}))
        with pytest.raises(Exception, match="authentication failed"):
            await source.open()
        await source.close()
    assert [login.tls for login in fake.logins][:1] == [True]  # TLS 1.2 worked; the fake refused the login


# -- which host: the one dialled, and DB_HOST over the secret's ------------------------------


@pytest.fixture
def user(tls_server: Callable[[str], TlsServer]) -> Iterator[RotatingUser]:
    with rotating_user(tls_server("postgres")) as made:
        yield made


async def test_a_postgres_tls_error_names_the_host_actually_dialled(
    user: RotatingUser, secrets: Any, moto_endpoint: str
) -> None:
    name = f"club/db/{uuid.uuid4().hex[:8]}"
    secrets.create_secret(Name=name, SecretString=json.dumps(user.secret()))
    env = user.env(AWS_SECRET_NAME=name, AWS_ENDPOINT_URL=moto_endpoint, DB_SECRET_TTL="0.001")
    env["DB_POOL_MIN"] = "0"
    source = sql_source(create_data_source(settings_for(env)))
    await source.open()
    try:
        # The secret now names the server by an address its certificate does not carry.
        secrets.put_secret_value(SecretId=name, SecretString=json.dumps(user.secret(host="127.0.0.1")))
        user.kill_connections()
        await until(lambda: client_sockets_to(user.server.port) == 0, "the killed connection is closed here")
        with pytest.raises(TlsError) as refused:
            async with source.connection() as conn:
                await conn.fetch("SELECT 1 AS one")
    finally:
        await source.close()
    assert refused.value.problem is TlsProblem.HOST_NAME_MISMATCH
    expected = f"the certificate of 127.0.0.1:{user.server.port} is not issued for '127.0.0.1'"
    assert expected in str(refused.value)


@pytest.mark.parametrize("backend", TLS_BACKENDS)
async def test_an_explicit_db_host_wins_over_the_secrets_host_and_says_so(
    backend: str,
    tls_server: Callable[..., TlsServer],
    secrets: Any,
    moto_endpoint: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """RDS Proxy: DB_HOST is the proxy, the rotation secret names the instance behind it."""
    with rotating_user(tls_server(backend)) as user:
        name = f"club/db/{uuid.uuid4().hex[:8]}"
        instance = "club.abc123.ca-central-1.rds.amazonaws.com"
        secrets.create_secret(Name=name, SecretString=json.dumps(user.secret(host=instance, port=1)))
        env = user.env(AWS_SECRET_NAME=name, AWS_ENDPOINT_URL=moto_endpoint)
        env |= {"DB_HOST": "localhost", "DB_PORT": str(user.server.port)}
        with caplog.at_level(logging.INFO):
            assert await connected_user(settings_for(env)) == user.name
    said = f"DB_HOST=localhost is set, so the gateway connects there, not to the host in secret {name!r}"
    assert f"{said} ({instance})" in caplog.text
