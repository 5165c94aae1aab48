"""A throwaway PostgreSQL cluster on a free loopback port: for the benchmark (with pg_stat_statements
to count statements per request), and for tests that stop and start a server of their own."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["BENCHMARK", "PostgresInstance", "free_port", "postgres_bin", "postgres_instance"]

# What the benchmark's server adds to postgresql.conf.
BENCHMARK = (
    "shared_preload_libraries = 'pg_stat_statements'\npg_stat_statements.track = top\n"
    "max_connections = 200\nshared_buffers = '256MB'\n"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def postgres_bin(tool: str) -> str:
    """The path of `tool` (initdb, pg_ctl, psql, …) of the newest PostgreSQL installed."""
    versions = sorted(Path("/usr/lib/postgresql").iterdir(), key=lambda p: int(p.name))
    return str(versions[-1] / "bin" / tool)


def _as_postgres(*command: str) -> list[str]:
    # PostgreSQL refuses to run as root.
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else list(command)


class PostgresInstance:
    """A cluster in a folder of its own; trust authentication for user postgres, database postgres."""

    def __init__(self, root: Path, port: int) -> None:
        self.root = root
        self.port = port
        self._data = root / "data"

    @property
    def pid(self) -> int:
        """The running postmaster's: its children are the backends."""
        return int((self._data / "postmaster.pid").read_text().split()[0])

    def _pg_ctl(self, *args: str, check: bool = True) -> None:
        subprocess.run(
            _as_postgres(
                postgres_bin("pg_ctl"), "-D", str(self._data), "-l", str(self.root / "log"), "-w", *args
            ),
            check=check,
            capture_output=True,
            timeout=120,
        )

    def start(self) -> None:
        self._pg_ctl("start")

    def stop(self) -> None:
        """A fast shutdown: sessions are ended as in a restart or a failover."""
        self._pg_ctl("-m", "fast", "stop")


@contextmanager
def postgres_instance(settings: str = BENCHMARK, prefix: str = "gw-bench-pg-") -> Iterator[PostgresInstance]:
    """A started cluster with `settings` added to its postgresql.conf; stopped and removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    subprocess.run(
        _as_postgres(postgres_bin("initdb"), "-D", str(root / "data"), "-A", "trust", "-U", "postgres"),
        check=True,
        capture_output=True,
        timeout=120,
    )
    server = PostgresInstance(root, free_port())
    with (root / "data" / "postgresql.conf").open("a") as conf:
        conf.write(
            f"listen_addresses = '127.0.0.1'\nport = {server.port}\nunix_socket_directories = '{root}'\n"
            + settings
        )
    server.start()
    try:
        yield server
    finally:
        # The folder goes next: nothing in it need be written out.
        server._pg_ctl("-m", "immediate", "stop", check=False)
        shutil.rmtree(root, ignore_errors=True)
