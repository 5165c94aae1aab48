"""A PostgreSQL of the test's own, on a free loopback port, that a test may stop and start again
(the machine's shared server on 5432 is never restarted)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.processes import free_port

__all__ = ["ThrowawayPostgres", "throwaway_postgres"]


def _bin(tool: str) -> str:
    versions = sorted(Path("/usr/lib/postgresql").iterdir(), key=lambda p: int(p.name))
    return str(versions[-1] / "bin" / tool)


def _as_postgres(*command: str) -> list[str]:
    # PostgreSQL refuses to run as root.
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else list(command)


class ThrowawayPostgres:
    """Trust authentication for user postgres, database postgres."""

    def __init__(self, root: Path, port: int) -> None:
        self.root = root
        self.port = port
        self._data = root / "data"

    def _pg_ctl(self, *args: str) -> None:
        subprocess.run(
            _as_postgres(_bin("pg_ctl"), "-D", str(self._data), "-l", str(self.root / "log"), "-w", *args),
            check=True,
            capture_output=True,
            timeout=120,
        )

    def start(self) -> None:
        self._pg_ctl("start")

    def stop(self) -> None:
        """A fast shutdown: sessions are ended as in a restart or a failover."""
        self._pg_ctl("-m", "fast", "stop")


@contextmanager
def throwaway_postgres() -> Iterator[ThrowawayPostgres]:
    root = Path(tempfile.mkdtemp(prefix="gw-test-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    subprocess.run(
        _as_postgres(_bin("initdb"), "-D", str(root / "data"), "-A", "trust", "-U", "postgres"),
        check=True,
        capture_output=True,
        timeout=120,
    )
    server = ThrowawayPostgres(root, free_port())
    with (root / "data" / "postgresql.conf").open("a") as conf:
        conf.write(
            f"listen_addresses = '127.0.0.1'\nport = {server.port}\nunix_socket_directories = '{root}'\n"
            "fsync = off\n"
        )
    server.start()
    try:
        yield server
    finally:
        subprocess.run(
            _as_postgres(_bin("pg_ctl"), "-D", str(root / "data"), "-m", "immediate", "-w", "stop"),
            capture_output=True,
            timeout=120,
        )
        shutil.rmtree(root, ignore_errors=True)
