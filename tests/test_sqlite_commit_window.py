"""SQLite's commit on a disk that stalls: a write whose commit outlasts REQUEST_TIMEOUT is answered
as it happened, and one that outlasts the bound is answered at the bound, behind both doors.

SQLite commits in aiosqlite's thread, where a cancellation cannot reach it: cut at REQUEST_TIMEOUT,
the write would land all the same while the client was told TIMEOUT, and its retry would write it
twice. The gateway runs with tests/slow_wal/slow_wal.c preloaded, which holds one commit's write to
the `-wal` file for as long as the test keeps a file in place, as a stalled disk would.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.club import CREATE_USER
from tests.conftest import server_env
from tests.graphql_client import error_codes
from tests.polling import until
from tests.processes import DOORS, serve

SOURCE = Path(__file__).parent / "slow_wal" / "slow_wal.c"
EVERY_DOOR = pytest.mark.parametrize("door", DOORS)
COUNT_USERS = "{ users { totalCount } }"


@pytest.fixture(scope="session")
def slow_wal_library() -> Iterator[Path]:
    """The shim, compiled for this machine (gcc is on every machine of this kind)."""
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        raise RuntimeError("no C compiler (gcc) to build tests/slow_wal/slow_wal.c")
    folder = Path(tempfile.mkdtemp(prefix="gw-slow-wal-"))
    library = folder / "slow_wal.so"
    subprocess.run([compiler, "-shared", "-fPIC", "-O2", "-o", str(library), str(SOURCE), "-ldl"], check=True)
    yield library
    shutil.rmtree(folder, ignore_errors=True)


@dataclass
class StallingDisk:
    """A gateway on SQLite whose next commit, once `stall()` is called, waits until `release()`."""

    url: str
    database: Path
    flag: Path
    hold: Path
    log: Path

    def stall(self) -> None:
        self.hold.touch()
        self.flag.touch()

    def release(self) -> None:
        self.hold.unlink(missing_ok=True)

    def held(self) -> int:
        """How many commits the disk has held."""
        return len(self.log.read_text().splitlines()) if self.log.exists() else 0

    def users_with(self, email: str) -> int:
        """Rows with `email`, as another connection sees the file: committed ones only."""
        with closing(sqlite3.connect(self.database)) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM users WHERE email = ?", (email,)).fetchone()[0])


@asynccontextmanager
async def stalling_disk(
    door: str, library: Path, folder: Path, **settings: str
) -> AsyncIterator[StallingDisk]:
    database, flag, hold, log = (
        folder / "club.db",
        folder / "stall-next-commit",
        folder / "hold",
        folder / "held.log",
    )
    env = server_env(
        "sqlite",
        None,
        DB_SQLITE_PATH=str(database),
        LD_PRELOAD=str(library),
        SLOW_WAL_FLAG=str(flag),
        SLOW_WAL_HOLD=str(hold),
        SLOW_WAL_LOG=str(log),
        **settings,
    )
    async with serve(door, {**os.environ, **env}) as served:
        disk = StallingDisk(served.url, database, flag, hold, log)
        try:
            # The Vercel door opens the database on its first request: opened (and migrated) here.
            assert "errors" not in await post(disk, COUNT_USERS)
            yield disk
        finally:
            disk.release()  # a failed test leaves no commit held


async def post(disk: StallingDisk, query: str, **variables: Any) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http,
        http.post(disk.url + "/graphql", json={"query": query, "variables": variables}) as response,
    ):
        assert response.status == 200, await response.text()
        body: dict[str, Any] = await response.json()
        return body


def new_user() -> dict[str, str]:
    return {"email": f"{uuid.uuid4().hex}@example.com", "displayName": "Stalled Disk"}


@EVERY_DOOR
async def test_a_commit_held_past_request_timeout_is_answered_as_written(
    door: str, slow_wal_library: Path, tmp_path: Path
) -> None:
    settings = {"REQUEST_TIMEOUT": "0.3", "DB_STATEMENT_TIMEOUT": "10"}
    async with stalling_disk(door, slow_wal_library, tmp_path, **settings) as disk:
        user = new_user()
        disk.stall()
        answer = asyncio.create_task(post(disk, CREATE_USER, input=user))
        await until(lambda: disk.held() == 1, "the commit to reach the disk")
        await asyncio.sleep(1.0)  # held well past REQUEST_TIMEOUT
        assert not answer.done(), answer.result()  # the answer waits for the commit
        disk.release()

        body = await answer

        assert "errors" not in body, body
        assert body["data"]["createUser"]["email"] == user["email"]
        assert disk.users_with(user["email"]) == 1


@EVERY_DOOR
async def test_a_commit_held_past_the_bound_is_answered_at_the_bound_that_it_may_have_landed(
    door: str, slow_wal_library: Path, tmp_path: Path
) -> None:
    # Waited for up to DB_STATEMENT_TIMEOUT and a second more, while the disk holds it until released.
    settings = {"REQUEST_TIMEOUT": "0.2", "DB_STATEMENT_TIMEOUT": "0.3"}
    async with stalling_disk(door, slow_wal_library, tmp_path, **settings) as disk:
        user = new_user()
        disk.stall()

        body = await post(disk, CREATE_USER, input=user)

        assert disk.held() == 1
        assert error_codes(body) == ["TIMEOUT"], body
        message = body["errors"][0]["message"]
        assert "may have been saved" in message and "read it back" in message
        # Answered while the disk still holds the commit: not waiting on SQLite's thread.
        assert disk.users_with(user["email"]) == 0
        disk.release()
        # SQLite finishes the commit: "may have" was true; and the gateway serves on.
        await until(lambda: disk.users_with(user["email"]) == 1, "the held commit to land")
        again = await post(disk, COUNT_USERS)
        assert again == {"data": {"users": {"totalCount": 1}}}, again
