"""check-connection: connect as the server would and say exactly what works and what does not."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
import ssl
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from enum import IntEnum
from typing import Any, assert_never

import asyncpg
import pymysql

from gateway.connect.aws_region import Region, rds_host_region
from gateway.connect.credentials import Credentials, open_credentials
from gateway.connect.tls import (
    LoadedCa,
    TlsError,
    TlsProblem,
    ca_mode,
    client_ssl_context,
    explain_tls_failure,
    load_ca,
    server_without_tls,
    unix_socket_refusal,
)
from gateway.datasources.mysql.handshake import GreetingWithoutTls, RefusedBeforeHandshake, connect
from gateway.datasources.protocol import DataSourceUnavailable
from gateway.datasources.registry import BACKENDS, Probe
from gateway.errors import Unavailable
from gateway.settings import Settings

__all__ = ["Failure", "Report", "check_connection"]


class Failure(IntEnum):
    """Each failure class, valued as the exit code of `gateway check-connection`."""

    CONFIG = 2
    CA = 10
    NETWORK = 11
    TLS = 12
    ACCESS_DENIED = 13
    UNKNOWN_DATABASE = 14
    PERMISSION = 15
    OTHER = 16
    SECRET = 17
    SERVER_REFUSED = 18


ADVICE = {
    Failure.CONFIG: "fix the variable named above in the environment or .env",
    Failure.CA: "put your provider's CA certificate in certs/ca.pem and set DB_CA_CERT_PATH "
    "(or DB_CA_CERT from `gateway encode-cert`)",
    Failure.NETWORK: "check DB_HOST and DB_PORT, the firewall, and that this machine's IP address is on "
    "the database's allow-list",
    Failure.TLS: "re-download the CA certificate from your provider, connect with the host name on the "
    "certificate, and keep DB_SSL=true",
    Failure.ACCESS_DENIED: "check DB_USER and DB_PASSWORD (and that the user may connect from this host)",
    Failure.UNKNOWN_DATABASE: "check DB_NAME, or create the database and grant the user access to it",
    Failure.PERMISSION: "grant the user the privilege named above on the database",
    Failure.OTHER: "see the message above",
    Failure.SECRET: "check AWS_SECRET_NAME, AWS_REGION, the secret's JSON, and that this machine's role may "
    "call secretsmanager:GetSecretValue on it (and has AWS credentials at all)",
    Failure.SERVER_REFUSED: "the server's error names the cause: 1040, close idle clients or raise "
    "max_connections (or lower DB_POOL_MAX); 1129, run FLUSH HOSTS on the server; 1130, let the user "
    "connect from this machine's address",
}

_PLAINTEXT_HINT = " (a server that requires TLS also answers this: try DB_SSL=true)"
_TLS_CONFIG_PROBLEMS = frozenset({TlsProblem.CA_MISSING, TlsProblem.CA_INVALID, TlsProblem.CLIENT_CERT})
# MySQL error numbers.
_ACCESS_DENIED = frozenset({1045, 1698})
# MySQL hides whether a database exists from a user who has no privileges on it.
_DATABASE_DENIED = 1044
_UNKNOWN_DATABASE = 1049
_COMMAND_DENIED = frozenset({1142, 1227})


_IAM_ADVICE = (
    "the token was signed but refused: the role needs rds-db:connect on this database user, the user must "
    "be made for IAM (MySQL: CREATE USER ... IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS'; PostgreSQL: "
    "GRANT rds_iam), and the instance must have IAM authentication enabled (docs/secrets-manager.md)"
)


@dataclass
class Report:
    """Everything check-connection found; `failure` is None when all checks passed."""

    backend: str
    target: str
    ca: dict[str, Any] | None = None
    server_version: str | None = None
    tls_version: str | None = None
    tls_cipher: str | None = None
    current_user: str | None = None
    can_create_tables: bool | None = None
    failure: Failure | None = None
    message: str | None = None
    advice: str | None = None
    checks: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return int(self.failure or 0)

    def fail(self, failure: Failure, message: str) -> Report:
        self.failure, self.message, self.advice = failure, message, ADVICE[failure]
        return self

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["failure"] = self.failure.name.lower() if self.failure else None
        data["ok"] = self.failure is None
        data["exit_code"] = self.exit_code
        return data


class _Diagnosed(Exception):
    def __init__(self, failure: Failure, message: str, advice: str | None = None) -> None:
        self.failure, self.advice = failure, advice
        super().__init__(message)


async def check_connection(settings: Settings) -> Report:
    """Run every check in order, stopping at the first failure, which the report names."""
    s = settings
    probe = _network_probe(BACKENDS[s.db_backend].probe)
    if probe is None:
        return _check_sqlite(s)
    try:
        s, iam_region, source = await _with_credentials(s)
    except Unavailable as exc:
        what = f"secret {s.aws_secret_name}" if s.aws_secret_name else f"{s.db_user}@{s.db_host}"
        return Report(s.db_backend, what).fail(Failure.SECRET, _one_line(str(exc)))
    report = Report(s.db_backend, f"{s.db_user}@{s.db_host}:{s.database_port}/{s.db_name}")
    if source is not None:
        report.checks.append(f"credentials: {source}")
    if iam_region is not None:
        report.checks.append(f"IAM token: signed for region {iam_region} (from {iam_region.source})")
    try:
        context = _check_ca(s, report)
        await asyncio.wait_for(probe(s, context, report), timeout=s.db_connect_timeout * 3)
    except _Diagnosed as exc:
        failure, message = exc.failure, str(exc)
        if failure is Failure.ACCESS_DENIED and iam_region is not None:
            return _iam_refused(report, s, iam_region, message)
        report.fail(failure, message)
        report.advice = exc.advice or report.advice
        return report
    except TimeoutError:
        return report.fail(
            Failure.NETWORK,
            f"no answer from {s.db_host}:{s.database_port} within {s.db_connect_timeout}s"
            " (DB_CONNECT_TIMEOUT)",
        )
    return report


def _one_line(message: str) -> str:
    return " ".join(message.split())


async def _with_credentials(s: Settings) -> tuple[Settings, Region | None, str | None]:
    """`s` with the credentials the server would use (Secrets Manager, IAM token, when configured).

    Also the region an IAM token was signed for, when DB_IAM_AUTH is on, and where the credentials
    came from when a secret is configured (it may have been unreachable: DB_SECRET_FALLBACK).
    """
    from gateway.connect.aws_secret import SecretsManagerCredentials
    from gateway.connect.iam import IamTokenCredentials

    provider = await open_credentials(s)
    c = await provider.login(await provider.current())
    region = provider.region_for(c.host) if isinstance(provider, IamTokenCredentials) else None
    source = None
    if s.aws_secret_name:
        base = provider.base if isinstance(provider, IamTokenCredentials) else provider
        source = (
            f"read from secret {s.aws_secret_name!r}"
            if isinstance(base, SecretsManagerCredentials)
            else f"DB_USER/DB_PASSWORD: secret {s.aws_secret_name!r} unreachable (DB_SECRET_FALLBACK=true)"
        )
    update = {"db_host": c.host, "db_port": c.port, "db_user": c.user, "db_password": c.password}
    return s.model_copy(update={**update, "db_name": c.database}), region, source


def _iam_refused(report: Report, s: Settings, signed_for: Region, message: str) -> Report:
    """An IAM login refused: name a region mismatch when the host's real name shows one, never DB_PASSWORD."""
    message = message.removesuffix(_PLAINTEXT_HINT)
    actual = _region_behind(s.db_host)
    if actual is not None and actual != signed_for.name:
        report.fail(
            Failure.ACCESS_DENIED,
            f"{message}: the IAM token was signed for region {signed_for} (from {signed_for.source}) but "
            f"{s.db_host} is in {actual}",
        )
        report.advice = f"set AWS_REGION={actual} (the database's region)"
        return report
    report.fail(Failure.ACCESS_DENIED, f"{message} (IAM token signed for region {signed_for})")
    report.advice = _IAM_ADVICE
    return report


def _region_behind(host: str) -> str | None:
    """The region of the RDS endpoint `host` is, or is an alias (CNAME) of; None if unknown."""
    region = rds_host_region(host)
    if region is not None:
        return region
    try:
        canonical, aliases, _ = socket.gethostbyname_ex(host)
    except OSError:
        return None
    for name in (canonical, *aliases):
        region = rds_host_region(name)
        if region is not None:
            return region
    return None


def _check_ca(s: Settings, report: Report) -> ssl.SSLContext | None:
    if not s.db_ssl or s.db_ssl_mode == "disable":
        report.checks.append("TLS is off (DB_SSL=false): the connection is not encrypted")
        return None
    try:
        ca = load_ca(s)
        context = client_ssl_context(s)
    except TlsError as exc:
        # A client certificate's problem is not the CA's: its message carries its own fix.
        client = exc.problem is TlsProblem.CLIENT_CERT
        advice = "fix DB_SSL_CERT and DB_SSL_KEY as said above" if client else None
        raise _Diagnosed(Failure.CA, str(exc), advice) from None
    if ca is None:
        report.ca = {"source": "system trust store"}
    else:
        # A bundle (RDS publishes one per region) is as good as its first certificate to expire.
        soonest = min(ca.certificates, key=lambda cert: cert.not_after)
        source = ca.source if ca_mode(s) == "file" else f"{ca.source} and the system trust store"
        report.ca = {
            "source": source,
            "subject": soonest.subject,
            "expires": soonest.not_after.date().isoformat(),
            "days_left": soonest.days_left(),
            "certificates": len(ca.certificates),
        }
    report.checks.append(f"CA certificate: {_describe_ca(report.ca)}")
    return context


def _describe_ca(ca: dict[str, Any]) -> str:
    if "subject" not in ca:
        return str(ca["source"])
    expiry = f"expires {ca['expires']} ({ca['days_left']} days left)"
    if ca["certificates"] > 1:
        first = f"the first to expire {ca['subject']!r}"
        return f"{ca['source']}, {ca['certificates']} certificates, {first} {expiry}"
    return f"{ca['source']}, {ca['subject']!r}, {expiry}"


def _trusted_ca(s: Settings) -> LoadedCa | None:
    """The CA file the probe trusted (readable: _check_ca read it), to tell its expiry from the server's."""
    try:
        return load_ca(s) if s.db_ssl and s.db_ssl_mode != "disable" else None
    except TlsError:
        return None


def _connect_failure(exc: BaseException, s: Settings) -> _Diagnosed:
    """The failure class of an exception raised while connecting."""
    tls = explain_tls_failure(exc, s.db_host, s.database_port, _trusted_ca(s))
    if tls is not None:
        failure = Failure.CA if tls.problem in _TLS_CONFIG_PROBLEMS else Failure.TLS
        return _Diagnosed(failure, str(tls))
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, socket.gaierror):
            return _Diagnosed(Failure.NETWORK, f"the host name {s.db_host!r} cannot be resolved (DNS)")
        if isinstance(cause, ConnectionRefusedError):
            return _Diagnosed(Failure.NETWORK, f"{s.db_host}:{s.database_port} refused the connection")
        if isinstance(cause, TimeoutError):
            return _Diagnosed(Failure.NETWORK, f"connecting to {s.db_host}:{s.database_port} timed out")
        cause = cause.__cause__ or cause.__context__
    return _Diagnosed(Failure.OTHER, f"{type(exc).__name__}: {exc}")


async def _probe_postgres(s: Settings, context: ssl.SSLContext | None, report: Report) -> None:
    refusal = unix_socket_refusal(s.db_host) if context is not None else None
    if refusal is not None:
        raise _Diagnosed(Failure.TLS, str(refusal))
    try:
        conn = await asyncpg.connect(
            host=s.db_host,
            port=s.database_port,
            user=s.db_user,
            password=s.db_password.get_secret_value(),
            database=s.db_name,
            ssl=context or False,
            timeout=s.db_connect_timeout,
        )
    except (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError) as exc:
        # pg_hba's "no encryption" line: a server that requires TLS refused a plaintext login.
        hint = _PLAINTEXT_HINT if not s.db_ssl and "no encryption" in str(exc) else ""
        raise _Diagnosed(
            Failure.ACCESS_DENIED, f"PostgreSQL refused {s.db_user!r}: {_one_line(str(exc))}{hint}"
        ) from None
    except asyncpg.InvalidCatalogNameError:
        raise _Diagnosed(Failure.UNKNOWN_DATABASE, f"database {s.db_name!r} does not exist") from None
    except asyncpg.InsufficientPrivilegeError as exc:
        # No CONNECT on the database, as MySQL's 1044 is reported.
        raise _Diagnosed(
            Failure.UNKNOWN_DATABASE,
            f"{s.db_user!r} may not connect to database {s.db_name!r}: {_one_line(str(exc))}",
        ) from None
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise _connect_failure(exc, s) from None
    try:
        report.server_version = str(await conn.fetchval("SHOW server_version"))
        report.current_user = str(await conn.fetchval("SELECT current_user"))
        row = await conn.fetchrow("SELECT version, cipher FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        if row is not None and row["version"]:
            report.tls_version, report.tls_cipher = row["version"], row["cipher"]
        report.checks.append(_connected_line(report))
        table = f"gateway_check_{uuid.uuid4().hex[:8]}"
        try:
            await conn.execute(f"CREATE TABLE {table} (id integer)")
            await conn.execute(f"DROP TABLE {table}")
        except asyncpg.InsufficientPrivilegeError as exc:
            report.can_create_tables = False
            raise _Diagnosed(
                Failure.PERMISSION,
                f"{report.current_user} cannot create tables ({exc}): the gateway creates its tables on "
                f"first start; GRANT CREATE ON SCHEMA public TO {report.current_user} (or run "
                "`gateway init-db` once as a user who can)",
            ) from None
        report.can_create_tables = True
        report.checks.append("permissions: created and dropped a scratch table")
    finally:
        await conn.close()


async def _probe_mysql(s: Settings, context: ssl.SSLContext | None, report: Report) -> None:
    try:
        # The gateway's own handshake: nothing sent without TLS, a refusing greeting named.
        conn = await connect(
            _mysql_login(s), context, s.db_connect_timeout, autocommit=True, charset="utf8mb4"
        )
    except pymysql.err.OperationalError as exc:
        code = exc.args[0]
        if code in _ACCESS_DENIED:
            hint = "" if s.db_ssl else _PLAINTEXT_HINT
            raise _Diagnosed(Failure.ACCESS_DENIED, f"MySQL refused: {exc.args[1]}{hint}") from None
        if code == _UNKNOWN_DATABASE:
            raise _Diagnosed(Failure.UNKNOWN_DATABASE, f"database {s.db_name!r} does not exist") from None
        if code == _DATABASE_DENIED:
            raise _Diagnosed(
                Failure.UNKNOWN_DATABASE,
                f"{s.db_user!r} may not use database {s.db_name!r}: it does not exist, or the user has no "
                "privileges on it",
            ) from None
        raise _connect_failure(exc, s) from None
    except RefusedBeforeHandshake as exc:
        raise _Diagnosed(Failure.SERVER_REFUSED, str(exc)) from None
    except GreetingWithoutTls:
        raise _Diagnosed(Failure.TLS, str(server_without_tls(s.db_host, s.database_port))) from None
    except DataSourceUnavailable as exc:
        raise _Diagnosed(Failure.OTHER, str(exc)) from None
    except (OSError, TlsError) as exc:
        raise _connect_failure(exc, s) from None
    try:
        async with conn.cursor() as cursor:
            await cursor.execute("SELECT VERSION(), CURRENT_USER()")
            report.server_version, report.current_user = await cursor.fetchone()
            await cursor.execute("SHOW SESSION STATUS WHERE Variable_name IN ('Ssl_version', 'Ssl_cipher')")
            status = dict(await cursor.fetchall())
        if context is not None and not status.get("Ssl_cipher"):
            raise _Diagnosed(Failure.TLS, str(server_without_tls(s.db_host, s.database_port)))
        report.tls_version = status.get("Ssl_version") or None
        report.tls_cipher = status.get("Ssl_cipher") or None
        report.checks.append(_connected_line(report))
        table = f"gateway_check_{uuid.uuid4().hex[:8]}"
        try:
            async with conn.cursor() as cursor:
                await cursor.execute(f"CREATE TABLE {table} (id INT)")
                await cursor.execute(f"DROP TABLE {table}")
        except pymysql.err.OperationalError as exc:
            if exc.args[0] not in _COMMAND_DENIED:
                raise
            report.can_create_tables = False
            raise _Diagnosed(
                Failure.PERMISSION,
                f"{report.current_user} cannot create tables ({exc.args[1]}): the gateway creates its "
                f"tables on first start; GRANT CREATE, DROP, ALTER, INDEX, CREATE ROUTINE, EXECUTE, SELECT, "
                f"INSERT, UPDATE, DELETE ON {s.db_name}.* TO the user (or run `gateway init-db` once as a "
                "user who can)",
            ) from None
        report.can_create_tables = True
        report.checks.append("permissions: created and dropped a scratch table")
    finally:
        conn.close()


def _mysql_login(s: Settings) -> Credentials:
    return Credentials(s.db_host, s.database_port, s.db_user, s.db_password, s.db_name)


_NetworkProbe = Callable[[Settings, ssl.SSLContext | None, Report], Awaitable[None]]


def _network_probe(probe: Probe) -> _NetworkProbe | None:
    """The probe that connects over the network for this kind of backend; None for a local file."""
    match probe:
        case "sqlite":
            return None
        case "postgres":
            return _probe_postgres
        case "mysql":
            return _probe_mysql
    assert_never(probe)


def _connected_line(report: Report) -> str:
    tls = f"{report.tls_version}, {report.tls_cipher}" if report.tls_version else "NOT encrypted"
    return f"connected: server {report.server_version}, as {report.current_user}, TLS: {tls}"


def _check_sqlite(s: Settings) -> Report:
    report = Report("sqlite", str(s.db_sqlite_path.resolve()))
    try:
        conn = sqlite3.connect(s.db_sqlite_path)
        try:
            conn.execute("CREATE TABLE IF NOT EXISTS gateway_check (id INTEGER)")
            conn.execute("DROP TABLE gateway_check")
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return report.fail(Failure.PERMISSION, f"cannot write {report.target}: {exc}")
    report.server_version = sqlite3.sqlite_version
    report.can_create_tables = True
    report.checks.append(f"SQLite {sqlite3.sqlite_version} file {report.target} is writable")
    return report


def render(report: Report) -> str:
    """The human-readable report, one check per line, the failure and its advice last."""
    lines = [f"checking {report.backend} {report.target}", *(f"  - {check}" for check in report.checks)]
    if report.failure is not None:
        lines += [f"  FAILED ({report.failure.name.lower()}): {report.message}", f"  fix: {report.advice}"]
    else:
        lines.append("all checks passed")
    return "\n".join(lines)
