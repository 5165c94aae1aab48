"""A statement that runs until stopped, on each backend, and the database's own view of it.

Inside `stall(backend, database)`, a trigger on `users` (or another table) counts a cross join of
10^12 rows, so an insert there runs a CPU-bound statement that would outlast any test: nothing but a
cancel stops it (a server notices a closed client socket while it waits on a lock or sleeps, not while
it computes). `running()` asks the database whether a statement of the gateway still runs.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Protocol

import asyncpg
import pymysql

from tests.conftest import MY, PG, engine

__all__ = ["Stall", "stall"]

_BALLAST_ROWS = 1000
_CROSS_JOIN = "SELECT count(*) FROM ballast a, ballast b, ballast c, ballast d"


class Stall(Protocol):
    async def running(self) -> bool:
        """Whether a statement of another session still runs in the database."""
        ...


class _Postgres:
    def __init__(self, database: str, table: str) -> None:
        self._database, self._table = database, table

    async def _connect(self) -> asyncpg.Connection:
        return await asyncpg.connect(database=self._database, ssl=False, **PG)

    @asynccontextmanager
    async def held(self) -> AsyncIterator[_Postgres]:
        conn = await self._connect()
        try:
            await conn.execute(
                f"CREATE TABLE ballast (x int);"
                f" INSERT INTO ballast SELECT generate_series(1, {_BALLAST_ROWS});"
                f" CREATE FUNCTION endless() RETURNS trigger LANGUAGE plpgsql AS"
                f" $$ BEGIN PERFORM ({_CROSS_JOIN}); RETURN NEW; END $$;"
                f" CREATE TRIGGER endless BEFORE INSERT ON {self._table}"
                " FOR EACH ROW EXECUTE FUNCTION endless();"
            )
            yield self
        finally:
            # Stopped here too, should the gateway have failed to: the database is shared.
            await conn.execute(
                "SELECT pg_cancel_backend(pid) FROM pg_stat_activity"
                " WHERE datname = $1 AND pid <> pg_backend_pid() AND state = 'active'",
                self._database,
            )
            await conn.execute(
                f"DROP TRIGGER endless ON {self._table}; DROP FUNCTION endless(); DROP TABLE ballast"
            )
            await conn.close()

    async def running(self) -> bool:
        conn = await self._connect()
        try:
            found = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = $1 AND pid <> pg_backend_pid() AND state = 'active'",
                self._database,
            )
        finally:
            await conn.close()
        return bool(found)


class _Mariadb:
    def __init__(self, database: str, table: str) -> None:
        self._database, self._table = database, table

    @contextmanager
    def _cursor(self) -> Iterator[pymysql.cursors.Cursor]:
        conn = pymysql.connect(database=self._database, connect_timeout=5, autocommit=True, **MY)  # type: ignore[arg-type]
        try:
            with conn.cursor() as cursor:
                yield cursor
        finally:
            conn.close()

    def _statements(self, cursor: pymysql.cursors.Cursor) -> list[int]:
        cursor.execute(
            "SELECT ID FROM information_schema.PROCESSLIST"
            " WHERE DB = %s AND ID <> CONNECTION_ID() AND COMMAND = 'Query'",
            (self._database,),
        )
        return [row[0] for row in cursor.fetchall()]

    @asynccontextmanager
    async def held(self) -> AsyncIterator[_Mariadb]:
        with self._cursor() as cursor:
            cursor.execute("CREATE TABLE ballast (x int)")
            cursor.executemany("INSERT INTO ballast VALUES (%s)", [(i,) for i in range(_BALLAST_ROWS)])
            cursor.execute(
                f"CREATE TRIGGER endless BEFORE INSERT ON {self._table} FOR EACH ROW SET @n = ({_CROSS_JOIN})"
            )
        try:
            yield self
        finally:
            with self._cursor() as cursor:
                for thread in self._statements(cursor):  # should the gateway have failed to stop it
                    cursor.execute(f"KILL QUERY {thread:d}")
                cursor.execute("DROP TRIGGER endless")
                cursor.execute("DROP TABLE ballast")

    async def running(self) -> bool:
        with self._cursor() as cursor:
            return bool(self._statements(cursor))


class _Sqlite:
    """SQLite has no list of statements; the insert's transaction holds the file's write lock
    until it ends, so being able to take that lock proves the statement is over."""

    def __init__(self, path: str, table: str) -> None:
        self._path, self._table = path, table

    @asynccontextmanager
    async def held(self) -> AsyncIterator[_Sqlite]:
        conn = sqlite3.connect(self._path, isolation_level=None, timeout=5)
        try:
            conn.execute("CREATE TABLE ballast (x INTEGER)")
            conn.executemany("INSERT INTO ballast VALUES (?)", [(i,) for i in range(_BALLAST_ROWS)])
            conn.execute(f"CREATE TRIGGER endless BEFORE INSERT ON {self._table} BEGIN {_CROSS_JOIN}; END")
            yield self
            conn.execute("DROP TRIGGER endless")
            conn.execute("DROP TABLE ballast")
        finally:
            conn.close()

    async def running(self) -> bool:
        conn = sqlite3.connect(self._path, isolation_level=None, timeout=0)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("ROLLBACK")
            return False
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc):
                raise
            return True
        finally:
            conn.close()


@asynccontextmanager
async def stall(backend: str, database: str, table: str = "users") -> AsyncIterator[Stall]:
    """Make inserts into `table` endless on `backend` (`database`: its name, or SQLite's file).

    A variant (postgres-pgbouncer, postgres+tls) stalls the server behind it."""
    kinds: dict[str, type[_Postgres | _Mariadb | _Sqlite]] = {
        "postgres": _Postgres,
        "mysql": _Mariadb,
        "sqlite": _Sqlite,
    }
    async with kinds[engine(backend)](database, table).held() as stalled:
        yield stalled
