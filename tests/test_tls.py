"""TLS to real PostgreSQL and MariaDB servers: verified when right, refused by name when wrong."""

from __future__ import annotations

import base64
import gc
import json
import subprocess
import uuid
import warnings
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway.connect.tls import TlsProblem
from gateway.datasources import create_data_source
from gateway.settings import Settings
from tests import processes
from tests.conftest import MY, PG, server_env, sql_source
from tests.db_users import client_sockets_to
from tests.opening import tls_refusal
from tests.processes import ROOT, free_port
from tests.tcp_proxy import TcpProxy
from tests.tls_servers import PASSWORD, READER, TlsServer

TLS_BACKENDS = ("postgres", "mysql")
# PostgreSQL's SSLRequest: length 8, code 80877103. The only bytes a client may send before TLS.
SSL_REQUEST = bytes.fromhex("0000000804d2162f")


def settings_from(env: dict[str, str]) -> Settings:
    return Settings(_env_file=None, **{key.lower(): value for key, value in env.items()})  # type: ignore[arg-type]


async def encryption_seen_by_server(env: dict[str, str]) -> str:
    """Open the data source as the gateway does; ask the server how this connection is protected."""
    source = sql_source(create_data_source(settings_from(env)))
    await source.open()
    try:
        async with source.connection() as conn:
            if env["DB_BACKEND"] == "postgres":
                rows = await conn.fetch(
                    "SELECT version FROM pg_stat_ssl WHERE pid = pg_backend_pid() AND ssl"
                )
                return str(rows[0]["version"]) if rows else ""
            rows = await conn.fetch("SHOW SESSION STATUS LIKE 'Ssl_version'")
            return str(rows[0]["Value"]) if rows else ""
    finally:
        await source.close()


@pytest.mark.parametrize("backend", TLS_BACKENDS)
@pytest.mark.parametrize("ca_from", ["file", "base64"])
async def test_verified_connection_is_encrypted_by_the_servers_account(
    backend: str, ca_from: str, tls_server: Callable[..., TlsServer]
) -> None:
    server = tls_server(backend)
    env = server.env() if ca_from == "file" else server.env(DB_CA_CERT_PATH="", DB_CA_CERT=server.ca_base64)
    env = {k: v for k, v in env.items() if v}
    assert await encryption_seen_by_server(env) in ("TLSv1.2", "TLSv1.3")


@pytest.mark.parametrize("backend", TLS_BACKENDS)
async def test_verify_ca_accepts_a_server_reached_by_an_address_its_certificate_lacks(
    backend: str, tls_server: Callable[..., TlsServer]
) -> None:
    env = tls_server(backend).env(DB_HOST="127.0.0.1", DB_SSL_MODE="verify-ca")
    assert await encryption_seen_by_server(env) in ("TLSv1.2", "TLSv1.3")


@pytest.mark.parametrize("backend", TLS_BACKENDS)
async def test_closing_the_data_source_closes_every_tls_socket(
    backend: str, tls_server: Callable[..., TlsServer]
) -> None:
    """Shutdown leaves no connection to the server half-closed behind it."""
    server = tls_server(backend)
    source = sql_source(create_data_source(settings_from(server.env(DB_POOL_MIN="2"))))
    await source.open()
    async with source.connection() as first, source.connection() as second:
        await first.fetch("SELECT 1 AS one")
        await second.fetch("SELECT 2 AS two")
    assert client_sockets_to(server.port) >= 2
    await source.close()
    assert client_sockets_to(server.port) == 0


MISCONFIGURED: dict[str, tuple[Callable[[TlsServer, Path], dict[str, str]], TlsProblem, str]] = {
    "wrong CA": (
        lambda s, tmp: s.env(DB_CA_CERT_PATH=str(s.ca_pem.parent / "other-ca.pem")),
        TlsProblem.UNTRUSTED_SERVER,
        "not signed by the configured CA",
    ),
    "host name mismatch": (
        lambda s, tmp: s.env(DB_HOST="127.0.0.1"),
        TlsProblem.HOST_NAME_MISMATCH,
        "is not issued for '127.0.0.1'",
    ),
    "CA file missing": (
        lambda s, tmp: s.env(DB_CA_CERT_PATH=str(tmp / "missing.pem")),
        TlsProblem.CA_MISSING,
        "cannot be read (No such file or directory)",
    ),
    "DB_CA_CERT not base64": (
        lambda s, tmp: {**s.env(DB_CA_CERT="not base64!"), "DB_CA_CERT_PATH": ""},
        TlsProblem.CA_INVALID,
        "DB_CA_CERT is not valid base64: encode the PEM file with `gateway encode-cert PATH`",
    ),
    "DB_CA_CERT holding a private key": (
        lambda s, tmp: {
            **s.env(
                DB_CA_CERT=base64.b64encode(
                    s.ca_pem.read_bytes() + trustme.CA().private_key_pem.bytes()
                ).decode()
            ),
            "DB_CA_CERT_PATH": "",
        },
        TlsProblem.CA_INVALID,
        "DB_CA_CERT holds a private key beside the certificate",
    ),
    "DB_CA_CERT not a PEM": (
        lambda s, tmp: {
            **s.env(DB_CA_CERT=base64.b64encode(b"secret-payload").decode()),
            "DB_CA_CERT_PATH": "",
        },
        TlsProblem.CA_INVALID,
        "DB_CA_CERT is not a PEM certificate",
    ),
}


@pytest.fixture
def collect_refused_sockets() -> Iterator[None]:
    """asyncpg and aiomysql leave the socket of a refused TLS handshake to the garbage collector.

    Collect it here, where it is expected, rather than in whichever later test the collector
    happens to run (where `filterwarnings = error` would blame that test).
    """
    yield
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


@pytest.mark.parametrize("backend", TLS_BACKENDS)
@pytest.mark.parametrize("case", list(MISCONFIGURED))
@pytest.mark.usefixtures("collect_refused_sockets")
async def test_each_misconfiguration_is_refused_with_its_own_message(
    backend: str, case: str, tls_server: Callable[..., TlsServer], tmp_path: Path
) -> None:
    make_env, problem, message = MISCONFIGURED[case]
    env = {k: v for k, v in make_env(tls_server(backend), tmp_path).items() if v}
    error = await tls_refusal(settings_from(env))
    assert error.problem == problem
    assert message in str(error)
    assert "c2VjcmV0LXBheWxvYWQ" not in str(error)


@pytest.mark.parametrize("backend", TLS_BACKENDS)
async def test_an_expired_server_certificate_is_refused(
    backend: str, tls_server: Callable[..., TlsServer]
) -> None:
    error = await tls_refusal(settings_from(tls_server(backend, "expired").env()))
    assert error.problem == TlsProblem.SERVER_CERT_EXPIRED
    assert "has expired: the server must renew it" in str(error)


@pytest.mark.parametrize("backend", TLS_BACKENDS)
async def test_a_server_without_tls_is_refused_before_anything_is_sent_in_plaintext(
    backend: str, tls_server: Callable[..., TlsServer]
) -> None:
    plain = PG if backend == "postgres" else MY
    proxy = TcpProxy(str(plain["host"]), int(plain["port"]))
    await proxy.start()
    try:
        env = tls_server(backend).env(
            DB_HOST="127.0.0.1", DB_PORT=str(proxy.port), DB_USER=str(plain["user"]), DB_NAME="test"
        )
        error = await tls_refusal(settings_from(env))
    finally:
        await proxy.cut()
    assert error.problem == TlsProblem.SERVER_WITHOUT_TLS
    assert "does not offer TLS, and DB_SSL=true never falls back to plaintext" in str(error)
    # PostgreSQL clients ask for TLS first; MySQL's greeting comes from the server, so nothing at all.
    assert bytes(proxy.sent) == (SSL_REQUEST if backend == "postgres" else b"")


async def unix_socket_directory() -> str:
    """Where the machine's PostgreSQL listens on a Unix socket (asked over TCP)."""
    conn = await asyncpg.connect(
        host=PG["host"], port=PG["port"], user=PG["user"], database="postgres", ssl=False
    )
    try:
        return str(await conn.fetchval("SHOW unix_socket_directories")).split(",")[0].strip()
    finally:
        await conn.close()


async def test_a_unix_socket_host_is_refused_under_tls_never_used_in_plaintext(
    pg_database: str, tls_server: Callable[..., TlsServer]
) -> None:
    """asyncpg takes a host starting with / as a socket directory, where it never uses TLS."""
    socket_dir = await unix_socket_directory()
    server = tls_server("postgres")
    env = server.env(
        DB_HOST=socket_dir, DB_PORT=str(PG["port"]), DB_USER=str(PG["user"]), DB_NAME=pg_database
    )
    error = await tls_refusal(settings_from(env))
    assert error.problem == TlsProblem.SERVER_WITHOUT_TLS
    assert f"{socket_dir} is a Unix socket, where PostgreSQL never uses TLS" in str(error)
    code, report, _ = check(env)
    assert (code, report["failure"], report["tls_version"]) == (12, "tls", None)
    assert "is a Unix socket" in report["message"]
    # A read replica named by its socket is left out: reads stay on the primary, over TLS.
    source = sql_source(create_data_source(settings_from(server.env(DB_READ_HOST=socket_dir))))
    await source.open()
    try:
        assert "is a Unix socket, where PostgreSQL never uses TLS" in str(source.degraded())
    finally:
        await source.close()


def run_gateway(
    args: list[str], env: dict[str, str], cwd: Path = ROOT, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    return processes.run_gateway(args, server_env("sqlite", None, **env), cwd, stdin)


def check(env: dict[str, str]) -> tuple[int, dict[str, Any], str]:
    """check-connection's exit code and JSON report, and its text output, for `env`."""
    as_json = run_gateway(["check-connection", "--json"], env)
    as_text = run_gateway(["check-connection"], env)
    assert as_json.returncode == as_text.returncode, as_text.stdout + as_text.stderr
    for output in (as_json.stdout + as_json.stderr, as_text.stdout + as_text.stderr):
        assert PASSWORD not in output
    return as_json.returncode, json.loads(as_json.stdout), as_text.stdout


@pytest.mark.parametrize("backend", TLS_BACKENDS)
def test_check_connection_reports_server_tls_user_ca_and_permissions(
    backend: str, tls_server: Callable[..., TlsServer]
) -> None:
    code, report, text = check(tls_server(backend).env())
    assert code == 0, report
    assert report["ok"] is True
    assert report["tls_version"] in ("TLSv1.2", "TLSv1.3") and report["tls_cipher"]
    assert report["current_user"].split("@")[0] == "club"
    assert report["server_version"]
    assert report["can_create_tables"] is True
    assert report["ca"]["days_left"] > 0 and report["ca"]["subject"]
    assert "all checks passed" in text


FAILURES: dict[str, tuple[Callable[[TlsServer, Path], dict[str, str]], int, str, str]] = {
    "CA not found": (
        lambda s, tmp: s.env(DB_CA_CERT_PATH=str(tmp / "nope.pem")),
        10,
        "ca",
        "put your provider's CA certificate",
    ),
    "DNS failure": (lambda s, tmp: s.env(DB_HOST="db.invalid"), 11, "network", "allow-list"),
    "connection refused": (lambda s, tmp: s.env(DB_PORT=str(free_port())), 11, "network", "firewall"),
    "wrong CA": (
        lambda s, tmp: s.env(DB_CA_CERT_PATH=str(s.ca_pem.parent / "other-ca.pem")),
        12,
        "tls",
        "re-download the CA certificate",
    ),
    "access denied": (lambda s, tmp: s.env(DB_PASSWORD="wrong-password"), 13, "access_denied", "DB_PASSWORD"),
    "unknown database": (lambda s, tmp: s.env(DB_NAME="no_such_db"), 14, "unknown_database", "DB_NAME"),
    "no CREATE privilege": (lambda s, tmp: s.env(DB_USER=READER), 15, "permission", "grant the user"),
}


@pytest.mark.parametrize("backend", TLS_BACKENDS)
@pytest.mark.parametrize("case", list(FAILURES))
def test_check_connection_diagnoses_each_failure_class(
    backend: str, case: str, tls_server: Callable[..., TlsServer], tmp_path: Path
) -> None:
    make_env, exit_code, failure, advice = FAILURES[case]
    code, report, text = check(make_env(tls_server(backend), tmp_path))
    assert (code, report["failure"], report["exit_code"]) == (exit_code, failure, exit_code), report
    assert advice in report["advice"]
    assert f"FAILED ({failure})" in text and "fix: " in text


@pytest.mark.parametrize("backend", TLS_BACKENDS)
def test_check_connection_suggests_tls_when_a_tls_only_server_refuses_a_plaintext_login(
    backend: str, tls_server: Callable[..., TlsServer]
) -> None:
    code, report, text = check({**tls_server(backend).env(DB_SSL="false"), "DB_CA_CERT_PATH": ""})
    assert (code, report["failure"]) == (13, "access_denied"), report
    assert "try DB_SSL=true" in text and "\n" not in report["message"]


def test_check_connection_names_a_database_the_user_may_not_connect_to(
    tls_server: Callable[..., TlsServer],
) -> None:
    server = tls_server("postgres")
    name = f"no_connect_{uuid.uuid4().hex[:8]}"
    server.admin(f"CREATE DATABASE {name}")
    server.admin(f"REVOKE CONNECT ON DATABASE {name} FROM PUBLIC")
    code, report, _ = check(server.env(DB_NAME=name))
    assert (code, report["failure"]) == (14, "unknown_database"), report
    assert f"may not connect to database '{name}'" in report["message"]
    assert "\n" not in report["message"]  # one line, as every failure


def test_check_connection_without_tls_says_so_and_passes_on_sqlite(tmp_path: Path) -> None:
    result = run_gateway(["check-connection"], {"DB_SQLITE_PATH": str(tmp_path / "club.db")})
    assert result.returncode == 0
    assert "is writable" in result.stdout


def test_encode_cert_round_trips_the_exact_bytes(
    tls_server: Callable[..., TlsServer], tmp_path: Path
) -> None:
    ca = tls_server("postgres").ca_pem
    result = run_gateway(["encode-cert", str(ca)], {}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    value = result.stdout.strip()
    assert base64.b64decode(value) == ca.read_bytes()
    assert (tmp_path / "certs" / "ca_base64.txt").read_text().strip() == value
    assert "DB_CA_CERT" in result.stderr and "expires" in result.stderr


def test_encode_cert_refuses_a_file_that_is_not_a_certificate(tmp_path: Path) -> None:
    (tmp_path / "notes.pem").write_text("-----BEGIN SOMETHING-----\nabc\n-----END SOMETHING-----\n")
    result = run_gateway(["encode-cert", "notes.pem"], {}, cwd=tmp_path)
    assert result.returncode == 10
    assert "notes.pem is not a PEM certificate" in result.stderr
    assert not (tmp_path / "certs").exists()


def test_encode_cert_never_passes_on_a_private_key_nor_takes_a_servers_certificate(tmp_path: Path) -> None:
    # Some exports put the CA's key in the same file: base64'd whole, it went to Vercel's dashboard.
    ca = trustme.CA()
    key = ca.private_key_pem.bytes()
    for name, pem in (
        ("ca-then-key.pem", ca.cert_pem.bytes() + key),
        ("key-then-ca.pem", key + ca.cert_pem.bytes()),
    ):
        (tmp_path / name).write_bytes(pem)
        result = run_gateway(["encode-cert", name], {}, cwd=tmp_path)
        assert result.returncode == 10, result.stdout
        assert f"{name} holds a private key beside the certificate" in result.stderr
        secret = key.splitlines()[1].decode()
        assert secret not in result.stdout + result.stderr
        assert base64.b64encode(key)[:40].decode() not in result.stdout
        assert not (tmp_path / "certs").exists()
    leaf = ca.issue_cert("db.example.com").cert_chain_pems[0].bytes()
    (tmp_path / "server.pem").write_bytes(leaf)
    result = run_gateway(["encode-cert", "server.pem"], {}, cwd=tmp_path)
    assert result.returncode == 10
    assert "server.pem: 'OU=Testing cert" in result.stderr  # its subject: trustme's leaves have no CN
    assert "is a server's certificate, not a CA's" in result.stderr
    # Text around the certificate (a bundle's comments, in any language) is left out, not a crash.
    (tmp_path / "bundle.pem").write_bytes("# Főtanúsítvány\n".encode() + ca.cert_pem.bytes())
    result = run_gateway(["encode-cert", "bundle.pem"], {}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert base64.b64decode(result.stdout.strip()) == ca.cert_pem.bytes()


def without_basic_constraints(signer: str) -> bytes:
    """A PEM certificate for 'db.example.com' with no basicConstraints extension, signed by
    `signer`: "itself", "a CA" (trustme's), or "another key" under its own name."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "db.example.com")])
    issuer, signing_key = name, key
    if signer == "a CA":
        ca = trustme.CA()
        issuer = x509.load_pem_x509_certificate(ca.cert_pem.bytes()).subject
        signing_key = serialization.load_pem_private_key(ca.private_key_pem.bytes(), None)  # type: ignore[assignment]
    elif signer == "another key":
        signing_key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(signing_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.mark.parametrize(
    ("signer", "refused"),
    [("itself", False), ("a CA", True), ("another key", True)],
)
def test_a_certificate_without_basic_constraints_is_a_ca_only_when_self_signed(
    signer: str, refused: bool, tmp_path: Path
) -> None:
    # A server's certificate made without the extension was taken as a CA (and base64'd for
    # DB_CA_CERT); only an old root, signed by its own key, may lack it.
    (tmp_path / "cert.pem").write_bytes(without_basic_constraints(signer))
    result = run_gateway(["encode-cert", "cert.pem"], {}, cwd=tmp_path)
    if refused:
        assert result.returncode == 10, result.stdout
        assert "cert.pem: 'db.example.com' is a server's certificate, not a CA's" in result.stderr
        assert "(no basicConstraints, and not self-signed)" in result.stderr
        assert not (tmp_path / "certs").exists()
    else:
        assert result.returncode == 0, result.stderr
        assert base64.b64decode(result.stdout.strip()) == (tmp_path / "cert.pem").read_bytes()


@pytest.mark.parametrize("backend", TLS_BACKENDS)
def test_setup_wizard_on_standard_input_writes_a_private_env_that_connects(
    backend: str, tls_server: Callable[..., TlsServer], tmp_path: Path
) -> None:
    server = tls_server(backend)
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "ca.pem").write_bytes(server.ca_pem.read_bytes())
    answers = [backend, "localhost", str(server.port), "club", PASSWORD, "club", "y", "certs/missing.pem", ""]
    result = run_gateway(["setup"], {}, cwd=tmp_path, stdin="\n".join(answers) + "\n")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "certs/missing.pem" in result.stdout  # refused, asked again, default certs/ca.pem taken
    env_file = tmp_path / ".env"
    assert env_file.stat().st_mode & 0o777 == 0o600
    assert "all checks passed" in result.stdout
    again = run_gateway(["check-connection"], {}, cwd=tmp_path)
    assert again.returncode == 0, again.stdout

    before = env_file.read_text()
    kept = run_gateway(["setup"], {}, cwd=tmp_path, stdin="n\n")
    assert kept.returncode == 1 and env_file.read_text() == before


def test_setup_from_flags_refuses_to_overwrite_without_force(
    tls_server: Callable[..., TlsServer], tmp_path: Path
) -> None:
    server = tls_server("mysql")
    flags = ["setup", "--non-interactive", "--backend", "mysql", "--port", str(server.port), "--user", "club"]
    flags += ["--database", "club", "--ca-cert", str(server.ca_pem), "--password-stdin"]
    first = run_gateway(flags, {}, cwd=tmp_path, stdin=PASSWORD + "\n")
    assert first.returncode == 0, first.stdout + first.stderr
    second = run_gateway(flags, {}, cwd=tmp_path, stdin=PASSWORD + "\n")
    assert second.returncode == 2 and "pass --force" in second.stderr


@pytest.mark.parametrize("backend", TLS_BACKENDS)
def test_serve_refuses_to_start_over_an_untrusted_server(
    backend: str, tls_server: Callable[..., TlsServer]
) -> None:
    server = tls_server(backend)
    env = server.env(DB_CA_CERT_PATH=str(server.ca_pem.parent / "other-ca.pem"), PORT=str(free_port()))
    result = run_gateway(["serve"], env)
    assert result.returncode == 3
    assert "TLS to the database refused: the certificate of localhost" in result.stderr
    assert PASSWORD not in result.stderr


async def test_a_read_replica_whose_certificate_fails_is_left_out_with_the_reason_a_primary_gets(
    tls_server: Callable[..., TlsServer],
) -> None:
    """The replica's TLS failure reads as the primary's would: cause and fix, not the driver's text."""
    primary, replica = tls_server("postgres"), tls_server("postgres", "expired")
    settings = settings_from(primary.env(DB_READ_HOST="localhost", DB_READ_PORT=str(replica.port)))
    source = sql_source(create_data_source(settings))
    await source.open()
    try:
        reason = str(source.degraded())
        assert f"the certificate of localhost:{replica.port} has expired" in reason, reason
        assert "SSLCertVerificationError" not in reason
    finally:
        await source.close()
