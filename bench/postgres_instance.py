"""A throwaway PostgreSQL for the benchmark, with pg_stat_statements to count statements per request."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PostgresInstance", "free_port", "postgres_instance"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _bin(tool: str) -> str:
    versions = sorted(Path("/usr/lib/postgresql").iterdir(), key=lambda p: int(p.name))
    return str(versions[-1] / "bin" / tool)


def _as_postgres(*command: str) -> list[str]:
    # PostgreSQL refuses to run as root.
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else list(command)


@dataclass(frozen=True)
class PostgresInstance:
    port: int
    pid: int  # the postmaster's: its children are the backends


@contextmanager
def postgres_instance() -> Iterator[PostgresInstance]:
    """A PostgreSQL on a free loopback port, trust auth for user postgres."""
    root = Path(tempfile.mkdtemp(prefix="gw-bench-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    data = root / "data"
    subprocess.run(
        _as_postgres(_bin("initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"),
        check=True,
        capture_output=True,
        timeout=120,
    )
    port = free_port()
    with (data / "postgresql.conf").open("a") as conf:
        conf.write(
            f"listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{root}'\n"
            "shared_preload_libraries = 'pg_stat_statements'\npg_stat_statements.track = top\n"
            "max_connections = 200\nshared_buffers = '256MB'\n"
        )
    subprocess.run(
        _as_postgres(_bin("pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w", "start"),
        check=True,
        capture_output=True,
        timeout=120,
    )
    try:
        yield PostgresInstance(port, int((data / "postmaster.pid").read_text().split()[0]))
    finally:
        subprocess.run(
            _as_postgres(_bin("pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"),
            capture_output=True,
            timeout=120,
        )
        shutil.rmtree(root, ignore_errors=True)
