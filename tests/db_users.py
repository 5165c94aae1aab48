"""A database user of its own, with a password that can be rotated, on the throwaway TLS servers.

Each test gets a new user and database, so rotating a password or killing connections never
touches another test's.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymysql

from tests.tls_servers import PASSWORD, TlsServer


@dataclass
class RotatingUser:
    """A user of `server` whose password the test changes, and its database."""

    server: TlsServer
    name: str
    password: str
    database: str

    def set_password(self, password: str) -> None:
        """The database's password changes now (the rotation lambda's setSecret step)."""
        if self.server.backend == "postgres":
            self.server.admin(f"ALTER ROLE {self.name} PASSWORD '{password}'")
        else:
            self.server.admin(f"ALTER USER '{self.name}'@'%' IDENTIFIED BY '{password}'")
        self.password = password

    def secret(self, password: str | None = None, **changes: Any) -> dict[str, Any]:
        """The RDS rotation template's shape, for this user."""
        return {
            "engine": "postgres" if self.server.backend == "postgres" else "mysql",
            "host": "localhost",
            "port": self.server.port,
            "username": self.name,
            "password": password or self.password,
            "dbname": self.database,
            **changes,
        }

    def env(self, **extra: str) -> dict[str, str]:
        """The gateway's variables besides credentials: backend and TLS."""
        return {
            "DB_BACKEND": self.server.backend,
            "DB_SSL": "true",
            "DB_CA_CERT_PATH": str(self.server.ca_pem),
            **extra,
        }

    def connection_ids(self) -> set[int]:
        """The server's ids of the connections this user has open now."""
        if self.server.backend == "postgres":
            rows = _psql_rows(self.server, f"SELECT pid FROM pg_stat_activity WHERE usename = '{self.name}'")
            return {int(pid) for pid in rows}
        conn = pymysql.connect(unix_socket=str(self.server.admin_socket), user="root")
        try:
            with conn.cursor() as cursor:
                cursor.execute("SELECT ID FROM information_schema.PROCESSLIST WHERE USER = %s", (self.name,))
                return {int(row[0]) for row in cursor.fetchall()}
        finally:
            conn.close()

    def kill_connections(self) -> None:
        """End every connection of this user, as a failover or an administrator would."""
        if self.server.backend == "postgres":
            _psql_rows(
                self.server,
                f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{self.name}'",
            )
            return
        for ident in self.connection_ids():
            with contextlib.suppress(pymysql.err.OperationalError):  # ended meanwhile
                self.server.admin(f"KILL {ident}")


def client_sockets_to(port: int) -> int:
    """How many TCP sockets this process holds connected to `port` (Linux /proc).

    After the server ends a connection, the client's socket closes once its event loop has seen
    the end: then the pool will not hand that connection out again.
    """
    ours = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            ours.add(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            continue  # the fd of the listing itself, already closed
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
            if remote_port == port and f"socket:[{fields[9]}]" in ours:
                count += 1
    return count


def _psql_rows(server: TlsServer, query: str) -> list[str]:
    listed = subprocess.run(
        [
            "psql",
            "-h",
            str(server.admin_socket),
            "-p",
            str(server.port),
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-tAc",
            query,
        ],
        env={"PGPASSWORD": PASSWORD, "PATH": "/usr/bin:/bin"},
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    )
    return listed.stdout.split()


@contextmanager
def rotating_user(server: TlsServer) -> Iterator[RotatingUser]:
    """A new user with its own database on `server`, dropped afterwards."""
    suffix = uuid.uuid4().hex[:8]
    user = RotatingUser(server, f"rot_{suffix}", f"first-{uuid.uuid4().hex}", f"rot_{suffix}")
    if server.backend == "postgres":
        server.admin(f"CREATE ROLE {user.name} LOGIN PASSWORD '{user.password}'")
        server.admin(f"CREATE DATABASE {user.database} OWNER {user.name}")
    else:
        server.admin(f"CREATE USER '{user.name}'@'%' IDENTIFIED BY '{user.password}'")
        server.admin(f"CREATE DATABASE {user.database} CHARACTER SET utf8mb4")
        server.admin(f"GRANT ALL ON {user.database}.* TO '{user.name}'@'%'")
    try:
        yield user
    finally:
        if server.backend == "postgres":
            server.admin(f"DROP DATABASE IF EXISTS {user.database} WITH (FORCE)")
            server.admin(f"DROP ROLE IF EXISTS {user.name}")
        else:
            server.admin(f"DROP DATABASE IF EXISTS {user.database}")
            server.admin(f"DROP USER IF EXISTS '{user.name}'@'%'")
