"""A throwaway PostgreSQL primary and its streaming replica, from the installed binaries.

The primary is initialised with `initdb` (trust on loopback, replication allowed); the replica
is its `pg_basebackup -R`, streaming from it. Both run as the `postgres` user (PostgreSQL refuses
root) on free loopback ports, in a temporary folder, and stop when the block ends.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from bench.postgres_instance import postgres_bin
from tests.processes import free_port

__all__ = ["DATABASE", "ReplicatedPair", "replicated_pair"]

DATABASE = "club"
_RUN_AS = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


@dataclass
class ReplicatedPair:
    """Where the primary and the replica listen, and how to stop and start the replica."""

    root: Path
    primary_port: int
    replica_port: int

    def stop_replica(self) -> None:
        _pg_ctl(self.root / "replica", "-m", "fast", "stop")

    def start_replica(self) -> None:
        _pg_ctl(self.root / "replica", "-l", str(self.root / "replica.log"), "start")

    @contextmanager
    def replica_silent(self) -> Iterator[None]:
        """The replica's connections are cut and its postmaster stopped (SIGSTOP): a new connection
        is accepted by the kernel and never answered, as behind a dead route, until the block ends."""
        postmaster = int((self.root / "replica" / "postmaster.pid").read_text().split()[0])
        _run(
            postgres_bin("psql"),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.replica_port),
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-c",
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
        )
        os.kill(postmaster, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(postmaster, signal.SIGCONT)

    @contextmanager
    def replica_frozen(self) -> Iterator[None]:
        """The replica's postmaster and every backend stopped (SIGSTOP) with their connections open:
        a frozen host or a split network, where even the server's own statement timeout never comes
        back, until the block ends."""
        postmaster = int((self.root / "replica" / "postmaster.pid").read_text().split()[0])
        children = Path(f"/proc/{postmaster}/task/{postmaster}/children").read_text().split()
        frozen = [postmaster, *map(int, children)]
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        try:
            yield
        finally:
            for pid in frozen:
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)


def _run(*command: str) -> None:
    result = subprocess.run([*_RUN_AS, *command], capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"{Path(command[0]).name} failed: {result.stderr or result.stdout}")


def _pg_ctl(data: Path, *args: str) -> None:
    _run(postgres_bin("pg_ctl"), "-D", str(data), "-w", *args)


@contextmanager
def replicated_pair() -> Iterator[ReplicatedPair]:
    """A primary with database `club`, and a hot-standby replica streaming from it."""
    root = Path(tempfile.mkdtemp(prefix="gw-replica-"))
    if _RUN_AS:
        shutil.chown(root, "postgres")
    pair = ReplicatedPair(root, free_port(), free_port())
    primary, replica = root / "primary", root / "replica"
    started: list[Path] = []
    try:
        _run(postgres_bin("initdb"), "-D", str(primary), "-A", "trust", "-U", "postgres", "--no-sync")
        with (primary / "postgresql.conf").open("a") as conf:
            conf.write(
                f"listen_addresses = '127.0.0.1'\nport = {pair.primary_port}\n"
                f"unix_socket_directories = '{root}'\nwal_level = replica\nmax_wal_senders = 4\n"
                "fsync = off\nfull_page_writes = off\n"
            )
        _pg_ctl(primary, "-l", str(root / "primary.log"), "start")
        started.append(primary)
        _run(
            postgres_bin("psql"),
            "-h",
            "127.0.0.1",
            "-p",
            str(pair.primary_port),
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-c",
            f"CREATE DATABASE {DATABASE}",
        )
        _run(
            postgres_bin("pg_basebackup"),
            "-h",
            "127.0.0.1",
            "-p",
            str(pair.primary_port),
            "-U",
            "postgres",
            "-D",
            str(replica),
            "-R",
            "-X",
            "stream",
            "--checkpoint=fast",
            "--no-sync",
        )
        with (replica / "postgresql.conf").open("a") as conf:
            # The copied configuration names the primary's port; the later line wins.
            conf.write(f"port = {pair.replica_port}\nhot_standby = on\n")
        pair.start_replica()
        started.append(replica)
        yield pair
    finally:
        for data in reversed(started):
            subprocess.run(
                [*_RUN_AS, postgres_bin("pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                capture_output=True,
                timeout=60,
            )
        shutil.rmtree(root, ignore_errors=True)
