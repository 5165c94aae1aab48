"""A throwaway PgBouncer in transaction mode in front of a PostgreSQL, for the benchmark and the tests.

Debian's package (1.18: no prepared statements across transactions). It runs as the `postgres`
user when started as root (PgBouncer refuses root), on a free loopback port, from a temporary
folder that user can write, and is stopped at the end.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.postgres_instance import free_port

__all__ = ["PGBOUNCER", "pgbouncer", "pgbouncer_version"]

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


@contextmanager
def pgbouncer(
    server_host: str, server_port: int, users: tuple[str, ...], pool_size: int = 10
) -> Iterator[int]:
    """PgBouncer on a free port (yielded), pooling transactions onto at most `pool_size` server
    connections per database and user; every database of the server, `users` trusted."""
    if not Path(PGBOUNCER).exists():
        raise FileNotFoundError("pgbouncer is not installed (apt-get install -y pgbouncer)")
    root = Path(tempfile.mkdtemp(prefix="gw-pgbouncer-"))
    port = free_port()
    (root / "users.txt").write_text("".join(f'"{user}" ""\n' for user in users))
    (root / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"* = host={server_host} port={server_port}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {root / 'users.txt'}\n"
        "pool_mode = transaction\n"
        f"default_pool_size = {pool_size}\nmax_client_conn = 400\n"
        # Server connections to a database a test dropped go soon; none linger past the session.
        "server_idle_timeout = 10\nserver_lifetime = 300\n"
        # Not every connection logged: a test session makes thousands.
        f"logfile = {root / 'pgbouncer.log'}\nlog_connections = 0\nlog_disconnections = 0\n"
    )
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        for path in root.iterdir():
            shutil.chown(path, "postgres")
        # Its own -u, not runuser: then the signal that stops it reaches it at once (runuser
        # passes it on, then waits two seconds before killing).
        as_user = ["-u", "postgres"]
    # It logs to stderr too: a pipe nobody reads would fill up and stop it mid-session.
    process = subprocess.Popen(
        [PGBOUNCER, *as_user, str(root / "pgbouncer.ini")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_port(port, process, root / "pgbouncer.log")
        yield port
    finally:
        process.terminate()
        try:
            process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
        shutil.rmtree(root, ignore_errors=True)


def pgbouncer_version() -> str:
    """`PgBouncer 1.18.0`, as the installed binary says it."""
    output = subprocess.run([PGBOUNCER, "--version"], capture_output=True, text=True, timeout=10).stdout
    return output.splitlines()[0] if output else "PgBouncer (unknown version)"


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            logged = log.read_text() if log.exists() else ""
            raise RuntimeError(f"pgbouncer exited {process.returncode}: {logged}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"pgbouncer did not listen on port {port} within 15 s")
