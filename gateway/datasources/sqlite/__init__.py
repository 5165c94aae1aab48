"""The embedded SQLite data source: a file, no server, the zero-setup default."""

from __future__ import annotations

import asyncio
import math
import sqlite3
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite

from gateway.datasources.protocol import DataSourceUnavailable, SourceStats
from gateway.datasources.sql.connection import DriverConnection
from gateway.datasources.sql.errors import DriverErrors
from gateway.datasources.sql.migrations import apply_migrations, load_migrations
from gateway.datasources.sql.rows import Row
from gateway.datasources.sql.source import SqlDataSource
from gateway.datasources.sqlite.json_sql import FUNCTIONS, SqliteJsonSql
from gateway.deadlines import Committing, Deadline
from gateway.errors import WriteUnconfirmed
from gateway.settings import Settings

__all__ = ["SqliteDataSource"]

# Primary result codes (the low byte of an extended one): no permission, read-only database.
_SQLITE_PERM = 3
_SQLITE_READONLY = 8
_MIGRATIONS_RECORDED = (
    "SELECT COUNT(*) AS present FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
)


def _adapt(value: Any) -> Any:
    if isinstance(value, datetime):
        # Fixed-width UTC text, the format the API prints, so it also sorts correctly.
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    return value


def _is_locked(exc: BaseException | None) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)


class _SqliteErrors(DriverErrors):
    backend = "SQLite"
    statement_errors = (sqlite3.IntegrityError, sqlite3.OperationalError)
    driver_errors = (sqlite3.Error,)
    permission_hint = "make the file and its folder writable by the user the gateway runs as"

    def unique_constraint(self, exc: BaseException) -> str | None:
        message = str(exc)
        if isinstance(exc, sqlite3.IntegrityError) and ("UNIQUE" in message or "PRIMARY KEY" in message):
            return message.rpartition(": ")[2]
        return None

    def is_unavailable(self, exc: BaseException) -> bool:
        message = str(exc)
        return isinstance(exc, sqlite3.OperationalError) and (
            "locked" in message or "unable to open" in message
        )

    def is_permission_denied(self, exc: BaseException) -> bool:
        return (getattr(exc, "sqlite_errorcode", 0) & 0xFF) in (_SQLITE_PERM, _SQLITE_READONLY)

    def is_timeout(self, exc: BaseException) -> bool:
        # The progress handler's doing: see SqliteDataSource._acquire.
        return isinstance(exc, sqlite3.OperationalError) and str(exc) == "interrupted"

    def unavailable(self, exc: BaseException) -> DataSourceUnavailable:
        return DataSourceUnavailable(f"SQLite database unavailable: {exc}")


_ERRORS = _SqliteErrors()
_PROGRESS_STEPS = 10_000


class _Connection(DriverConnection[aiosqlite.Connection]):
    __slots__ = ()
    errors = _ERRORS

    async def _run(self, sql: str, args: Sequence[Any]) -> aiosqlite.Cursor:
        return await self.driver.execute(sql, [_adapt(a) for a in args])

    async def _fetch(self, sql: str, args: Sequence[Any]) -> list[Row]:
        cursor = await self._run(sql, args)
        names = [d[0] for d in cursor.description or ()]
        rows = await cursor.fetchall()
        return [dict(zip(names, row, strict=True)) for row in rows]

    async def _execute(self, sql: str, args: Sequence[Any]) -> int:
        cursor = await self._run(sql, args)
        return cursor.rowcount

    async def _insert(self, sql: str, args: Sequence[Any]) -> int:
        cursor = await self._run(sql, args)
        # lastrowid keeps the previous insert's id when this one inserted nothing.
        return int(cursor.lastrowid or 0) if cursor.rowcount > 0 else 0


class SqliteDataSource(SqlDataSource):
    """A small pool of SQLite connections to one file in WAL mode.

    Writers take the file's write lock up front (BEGIN IMMEDIATE) and wait for it up to
    the acquire timeout, so concurrent writes queue instead of failing.
    """

    for_update = ""

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self.json_sql = SqliteJsonSql()
        self._path = Path(settings.db_sqlite_path)
        self._max = settings.db_pool_max
        self._busy_ms = int(settings.db_acquire_timeout * 1000)
        self._acquire_timeout = settings.db_acquire_timeout
        self._idle: asyncio.LifoQueue[aiosqlite.Connection] = asyncio.LifoQueue()
        self._all: set[aiosqlite.Connection] = set()
        self._slots = asyncio.Semaphore(self._max)
        self._closed = True
        self._statement_timeout = settings.db_statement_timeout
        # When each connection in use must stop: its progress handler interrupts it after that.
        self._deadlines: dict[aiosqlite.Connection, float] = {}
        # Connections _stopped() gave up on, closing.
        self._closing: set[asyncio.Task[None]] = set()
        self._in_use = 0
        self._waiting = 0

    def stats(self) -> SourceStats:
        return SourceStats(len(self._all), self._in_use, self._waiting, self._max)

    async def _connect(self) -> aiosqlite.Connection:
        try:
            conn = await aiosqlite.connect(self._path, isolation_level=None)
        except sqlite3.Error as exc:
            raise DataSourceUnavailable(f"DB_SQLITE_PATH={self._path}: {exc}") from exc
        try:
            await conn.execute(f"PRAGMA busy_timeout = {self._busy_ms}")
            await conn.execute("PRAGMA foreign_keys = ON")
            await conn.execute("PRAGMA synchronous = NORMAL")
            for name, (arity, function) in FUNCTIONS.items():
                await conn.create_function(name, arity, function, deterministic=True)
            deadlines = self._deadlines
            # Called in SQLite's thread every 10,000 instructions; a true result interrupts.
            await conn.set_progress_handler(
                lambda: time.monotonic() > deadlines.get(conn, math.inf), _PROGRESS_STEPS
            )
        except sqlite3.Error as exc:
            # Close it, or its worker thread outlives the pool (and the event loop).
            await conn.close()
            raise DataSourceUnavailable(f"DB_SQLITE_PATH={self._path}: {exc}") from exc
        if self._closed:  # closed while this one was connecting
            await conn.close()
            raise DataSourceUnavailable("pool is closed")
        self._all.add(conn)
        return conn

    async def _open(self) -> None:
        if self._path.parent and not self._path.parent.exists():
            raise DataSourceUnavailable(
                f"DB_SQLITE_PATH={self._path}: folder {self._path.parent} does not exist"
            )
        self._closed = False
        with _ERRORS.refusing_start(f"use {self._path} as an SQLite database"):
            await self._use_wal()
        with _ERRORS.refusing_start(f"apply migrations to SQLite database {self._path}"):
            async with self.transaction() as conn:
                await apply_migrations(conn, load_migrations(__name__), _MIGRATIONS_RECORDED)

    async def _use_wal(self) -> None:
        """WAL is a property of the file: set once here, not racing on every new connection.

        Switching needs the file to itself, and SQLite answers "locked" at once instead of
        waiting busy_timeout when another process is switching too: retry until that timeout.
        """
        deadline = asyncio.get_running_loop().time() + self._acquire_timeout
        while True:
            try:
                async with self.connection() as conn:
                    await conn.fetch("PRAGMA journal_mode = WAL")
                return
            except DataSourceUnavailable as exc:
                # A file that is not a database stays so: only a lock is worth waiting for.
                if not _is_locked(exc.__cause__) or asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(0.05)

    async def close(self) -> None:
        self._closed = True
        # Forgotten first: a closed connection must never be handed out after the next open().
        connections, self._all = self._all, set()
        while not self._idle.empty():
            self._idle.get_nowait()
        for conn in connections:
            await conn.close()
        await asyncio.gather(*self._closing, return_exceptions=True)

    @asynccontextmanager
    async def _acquire(self) -> AsyncIterator[aiosqlite.Connection]:
        if self._closed:
            raise DataSourceUnavailable("pool is closed")
        self._waiting += 1
        try:
            with Deadline(self._acquire_timeout):
                await self._slots.acquire()
        except TimeoutError:
            raise DataSourceUnavailable("no database connection free (DB_POOL_MAX reached)") from None
        finally:
            self._waiting -= 1
        self._in_use += 1
        try:
            conn = self._idle.get_nowait() if not self._idle.empty() else await self._connect()
            self._deadlines[conn] = time.monotonic() + self._statement_timeout
            try:
                yield conn
            except WriteUnconfirmed:
                # Its commit runs on in the connection's thread, where nothing can stop it: the
                # answer goes out now, at the bound, and the connection closes once it is done.
                self._discard(conn)
                raise
            except BaseException:
                await self._stopped(conn)
                raise
            finally:
                self._deadlines.pop(conn, None)
                if conn in self._all:  # else close() closed it meanwhile, or _stopped() failed
                    self._idle.put_nowait(conn)
        finally:
            self._in_use -= 1
            self._slots.release()

    async def _stopped(self, conn: aiosqlite.Connection) -> None:
        """After an error or a cancel: no statement of `conn` still running, no transaction open.

        A cancelled await leaves its statement running in the connection's thread, with work
        queued behind it; interrupted, it ends at once. A connection that cannot be brought back
        (cancelled again meanwhile) is closed, never handed out.

        A cursor cancelled between two of its steps is left open, and SQLite keeps the interrupt
        pending for every statement until it closes: the connection's next requests failed as
        timeouts. A probe finds that, and such a connection is closed too.
        """
        try:
            await conn.interrupt()
            # Queued behind whatever still runs, so once it returns, nothing does.
            await conn.rollback()
            await (await conn.execute("SELECT 1")).close()
        except sqlite3.OperationalError:
            self._discard(conn)  # still interrupted
        except BaseException:
            self._discard(conn)
            raise

    def _discard(self, conn: aiosqlite.Connection) -> None:
        """`conn` is never handed out again, and closes once what runs in its thread is done."""
        self._all.discard(conn)
        closing = asyncio.create_task(conn.close())
        self._closing.add(closing)
        closing.add_done_callback(self._closing.discard)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[_Connection]:
        async with self._acquire() as conn:
            yield _Connection(conn, self)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[_Connection]:
        async with self._acquire() as conn:
            wrapped = _Connection(conn, self)
            await wrapped.execute("BEGIN IMMEDIATE")
            yield wrapped  # an error rolls back in _acquire
            # Cut, the commit would go on in aiosqlite's thread all the same.
            with Committing(self._statement_timeout):
                await conn.commit()
