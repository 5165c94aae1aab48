"""Throwaway PostgreSQL and MariaDB servers that speak only TLS, with certificates from trustme.

Each server is started once per test session on a free loopback port, from the installed
binaries, in a temporary directory, and stopped at the end. Certificates name `localhost` only,
so connecting to 127.0.0.1 under verify-full is the host-name-mismatch case.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiomysql
import asyncpg
import pymysql
import trustme

from bench.postgres_instance import postgres_bin
from tests.processes import free_port

PASSWORD = "tls-test-pw"
DATABASE = "club"
USER = "club"
# A user allowed to connect and read, but not to create tables.
READER = "reader"
# A user who must also present a client certificate signed by the test CA (mutual TLS).
MTLS_USER = "mtls"


@dataclass(frozen=True)
class TlsServer:
    """How to reach one throwaway server, and the CA that signed its certificate."""

    backend: str
    port: int
    ca_pem: Path
    admin_socket: Path

    def admin(self, statement: str) -> None:
        """Run one statement as the superuser, over the server's local socket."""
        if self.backend == "postgres":
            _psql(self.admin_socket, self.port, statement)
        else:
            _mysql_admin(self.admin_socket, statement)

    def create_database(self, name: str) -> None:
        """An empty database the application user owns."""
        if self.backend == "postgres":
            self.admin(f"CREATE DATABASE {name} OWNER {USER}")
        else:
            self.admin(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
            self.admin(f"GRANT ALL ON {name}.* TO '{USER}'@'%'")

    @asynccontextmanager
    async def locked(self, database: str, table: str) -> AsyncIterator[None]:
        """While inside, every query of `table` in `database` waits for this lock, holding its connection."""
        if self.backend == "postgres":
            pg = await asyncpg.connect(
                host=str(self.admin_socket),
                port=self.port,
                user="postgres",
                password=PASSWORD,
                database=database,
            )
            try:
                async with pg.transaction():
                    await pg.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
                    yield
            finally:
                await pg.close()
            return
        my = await aiomysql.connect(unix_socket=str(self.admin_socket), user="root", db=database)
        try:
            async with my.cursor() as cursor:
                await cursor.execute(f"LOCK TABLES {table} WRITE")
                try:
                    yield
                finally:
                    await cursor.execute("UNLOCK TABLES")
        finally:
            await my.ensure_closed()

    @property
    def ca_base64(self) -> str:
        return base64.b64encode(self.ca_pem.read_bytes()).decode("ascii")

    def env(self, **extra: str) -> dict[str, str]:
        """The gateway's variables for a verified connection (CA from the file), plus `extra`."""
        return {
            "DB_BACKEND": self.backend,
            "DB_HOST": "localhost",
            "DB_PORT": str(self.port),
            "DB_USER": USER,
            "DB_PASSWORD": PASSWORD,
            "DB_NAME": DATABASE,
            "DB_SSL": "true",
            "DB_CA_CERT_PATH": str(self.ca_pem),
            **extra,
        }


class Certificates:
    """A CA and the server certificates the cases need, written where servers can read them."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.ca = trustme.CA()
        self.ca_pem = folder / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_pem))
        self.other_ca_pem = folder / "other-ca.pem"
        trustme.CA().cert_pem.write_to_path(str(self.other_ca_pem))

    def server_pair(self, name: str, expired: bool = False) -> tuple[Path, Path]:
        """Certificate and key for `localhost`; `expired` gives one whose validity ended yesterday."""
        now = datetime.now(UTC)
        window = {"not_before": now - timedelta(days=30), "not_after": now - timedelta(days=1)}
        cert = self.ca.issue_cert("localhost", **(window if expired else {}))
        cert_path, key_path = self.folder / f"{name}.pem", self.folder / f"{name}.key"
        cert.cert_chain_pems[0].write_to_path(str(cert_path))
        cert.private_key_pem.write_to_path(str(key_path))
        key_path.chmod(0o600)
        return cert_path, key_path

    def client_pair(self, user: str) -> tuple[Path, Path]:
        """A client certificate and key for `user` (its common name, as PostgreSQL checks it)."""
        cert = self.ca.issue_cert(f"{user}.client.test", common_name=user)
        cert_path, key_path = self.folder / f"client-{user}.pem", self.folder / f"client-{user}.key"
        cert.cert_chain_pems[0].write_to_path(str(cert_path))
        cert.private_key_pem.write_to_path(str(key_path))
        key_path.chmod(0o600)
        return cert_path, key_path


def _run(*command: str, user: str | None = None) -> None:
    prefix = ["runuser", "-u", user, "--"] if user else []
    result = subprocess.run([*prefix, *command], capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"{command[0]} failed: {result.stderr or result.stdout}")


@contextmanager
def postgres_servers(certs: Certificates) -> Iterator[dict[str, TlsServer]]:
    """A valid-certificate and an expired-certificate PostgreSQL, TLS only, scram passwords."""
    root = Path(tempfile.mkdtemp(prefix="gw-tls-pg-"))
    shutil.chown(root, "postgres")
    root.chmod(0o700)
    (root / "pw").write_text(PASSWORD)
    shutil.chown(root / "pw", "postgres")
    _run(
        postgres_bin("initdb"),
        "-D",
        str(root / "data"),
        "-A",
        "scram-sha-256",
        f"--pwfile={root / 'pw'}",
        "-U",
        "postgres",
        user="postgres",
    )
    (root / "data" / "pg_hba.conf").write_text(
        f"hostssl all {MTLS_USER} 127.0.0.1/32 scram-sha-256 clientcert=verify-full\n"
        "hostssl all all 127.0.0.1/32 scram-sha-256\nhostssl all all ::1/128 scram-sha-256\n"
        "local all all scram-sha-256\n"
    )
    started: list[Path] = []
    servers: dict[str, TlsServer] = {}
    try:
        for name, expired in (("valid", False), ("expired", True)):
            data = root / f"data-{name}"
            shutil.copytree(root / "data", data)
            cert, key = certs.server_pair(f"pg-{name}", expired=expired)
            for path in (cert, key, certs.ca_pem):
                shutil.copy(path, data / path.name)
            port = free_port()
            with (data / "postgresql.conf").open("a") as conf:
                conf.write(
                    f"ssl = on\nssl_cert_file = '{cert.name}'\nssl_key_file = '{key.name}'\n"
                    f"ssl_ca_file = '{certs.ca_pem.name}'\n"
                    f"listen_addresses = '127.0.0.1,::1'\nport = {port}\nunix_socket_directories = '{root}'\n"
                )
            subprocess.run(["chown", "-R", "postgres", str(root)], check=True)
            _run(
                postgres_bin("pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(root / f"{name}.log"),
                "-w",
                "start",
                user="postgres",
            )
            started.append(data)
            servers[name] = TlsServer("postgres", port, certs.ca_pem, root)
        _postgres_setup(root, servers["valid"].port)
        yield servers
    finally:
        for data in started:
            subprocess.run(
                [
                    "runuser",
                    "-u",
                    "postgres",
                    "--",
                    postgres_bin("pg_ctl"),
                    "-D",
                    str(data),
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                ],
                capture_output=True,
                timeout=60,
            )
        shutil.rmtree(root, ignore_errors=True)


def _postgres_setup(socket_dir: Path, port: int) -> None:
    """The application user and database, a reader who may not create tables, a mutual-TLS user."""
    _psql(socket_dir, port, f"CREATE ROLE {USER} LOGIN PASSWORD '{PASSWORD}'")
    _psql(socket_dir, port, f"CREATE DATABASE {DATABASE} OWNER {USER}")
    _psql(socket_dir, port, f"CREATE ROLE {READER} LOGIN PASSWORD '{PASSWORD}'")
    _psql(socket_dir, port, f"CREATE ROLE {MTLS_USER} LOGIN PASSWORD '{PASSWORD}'")
    _psql(socket_dir, port, f"CREATE DATABASE {MTLS_USER} OWNER {MTLS_USER}")


def _psql(socket_dir: Path, port: int, statement: str) -> None:
    subprocess.run(
        ["psql", "-h", str(socket_dir), "-p", str(port), "-U", "postgres", "-d", "postgres", "-c", statement],
        env={"PGPASSWORD": PASSWORD, "PATH": "/usr/bin:/bin"},
        check=True,
        capture_output=True,
        timeout=30,
    )


@contextmanager
def mariadb_servers(certs: Certificates) -> Iterator[dict[str, TlsServer]]:
    """A valid-certificate and an expired-certificate MariaDB, requiring secure transport."""
    root = Path(tempfile.mkdtemp(prefix="gw-tls-my-"))
    _run(
        "mariadb-install-db",
        "--no-defaults",
        "--user=root",
        f"--datadir={root / 'data'}",
        "--auth-root-authentication-method=normal",
        "--skip-test-db",
    )
    processes: list[subprocess.Popen[bytes]] = []
    servers: dict[str, TlsServer] = {}
    try:
        for name, expired in (("valid", False), ("expired", True)):
            data = root / f"data-{name}"
            shutil.copytree(root / "data", data)
            cert, key = certs.server_pair(f"my-{name}", expired=expired)
            port = free_port()
            socket = root / f"{name}.sock"
            processes.append(
                subprocess.Popen(
                    [
                        "/usr/sbin/mariadbd",
                        "--no-defaults",
                        "--user=root",
                        f"--datadir={data}",
                        f"--socket={socket}",
                        f"--port={port}",
                        "--bind-address=127.0.0.1",
                        f"--ssl-ca={certs.ca_pem}",
                        f"--ssl-cert={cert}",
                        f"--ssl-key={key}",
                        "--require-secure-transport=ON",
                        f"--pid-file={root / name}.pid",
                        f"--log-error={root / name}.err",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            _wait_for_socket(socket, root / f"{name}.err")
            _mariadb_setup(socket)
            servers[name] = TlsServer("mysql", port, certs.ca_pem, socket)
        yield servers
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(root, ignore_errors=True)


def _wait_for_socket(socket: Path, log: Path) -> None:
    ping = ["mariadb-admin", "--no-defaults", f"--socket={socket}", "--user=root", "ping"]
    for _ in range(300):
        if subprocess.run(ping, capture_output=True, timeout=30).returncode == 0:
            return
        time.sleep(0.1)
    raise RuntimeError(f"MariaDB did not start: {log.read_text() if log.exists() else 'no log'}")


def _mariadb_setup(socket: Path) -> None:
    for statement in (
        f"CREATE DATABASE {DATABASE} CHARACTER SET utf8mb4",
        f"CREATE USER '{USER}'@'%' IDENTIFIED BY '{PASSWORD}'",
        f"GRANT ALL ON {DATABASE}.* TO '{USER}'@'%'",
        f"CREATE USER '{READER}'@'%' IDENTIFIED BY '{PASSWORD}'",
        f"GRANT SELECT ON {DATABASE}.* TO '{READER}'@'%'",
        f"CREATE USER '{MTLS_USER}'@'%' IDENTIFIED BY '{PASSWORD}' REQUIRE X509",
        f"CREATE DATABASE {MTLS_USER} CHARACTER SET utf8mb4",
        f"GRANT ALL ON {MTLS_USER}.* TO '{MTLS_USER}'@'%'",
    ):
        _mysql_admin(socket, statement)


def _mysql_admin(socket: Path, statement: str) -> None:
    conn = pymysql.connect(unix_socket=str(socket), user="root")
    try:
        with conn.cursor() as cursor:
            cursor.execute(statement)
    finally:
        conn.close()
