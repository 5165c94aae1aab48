"""aiomysql as the MySQL data source uses it: its errors, the connection the shared queries use,
and closing a pool's sockets."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import aiomysql
import pymysql

from gateway.datasources.sql.closing import close_or_terminate
from gateway.datasources.sql.connection import DriverConnection
from gateway.datasources.sql.errors import DriverErrors
from gateway.datasources.sql.placeholders import format_style
from gateway.datasources.sql.rows import Row

if TYPE_CHECKING:
    from gateway.telemetry.tracing import Tracing

__all__ = [
    "CONNECTION_ERRORS",
    "ERRORS",
    "NO_SUCH_THREAD",
    "AnswerCut",
    "MysqlConnection",
    "access_denied",
    "json_row",
    "pool_closed",
    "pool_streams",
]

DUPLICATE_KEY = 1062
# Denied on a database, a table, a column, or a global privilege (SUPER and the like).
PRIVILEGE_DENIED = frozenset({1044, 1142, 1143, 1227})
ACCESS_DENIED = 1045
NO_SUCH_THREAD = 1094
CONNECTION_ERRORS = (OSError, TimeoutError, pymysql.err.InterfaceError)
# Client-side codes for "cannot connect", "server gone away", "lost connection", too many.
CONNECTION_CODES = frozenset({1040, 2002, 2003, 2006, 2013, 2055})
SOCKETS_CLOSE_TIMEOUT = 2.0


def access_denied(exc: BaseException) -> bool:
    """Whether `exc` is the server refusing the user's credentials (1045)."""
    return isinstance(exc, pymysql.err.OperationalError) and bool(exc.args) and exc.args[0] == ACCESS_DENIED


def _literal(connection: aiomysql.Connection, value: Any) -> str:
    """A value other than an int as SQL text: NULL, or PyMySQL's escape of it."""
    if value is None:
        return "NULL"
    if type(value) is datetime:
        # DATETIME columns hold UTC without an offset.
        value = value.astimezone(UTC).replace(tzinfo=None)
    return str(connection.escape(value))


def _statement(connection: aiomysql.Connection, sql: str, args: Sequence[Any]) -> str:
    """`sql` with its `?` placeholders replaced by `args` as PyMySQL formats them (its `%` escaped,
    each value a literal), so the cursor gets no arguments to escape a second time."""
    # An int, most of a write's values, is digits and a sign: nothing to escape (a bool, an int
    # subclass, is PyMySQL's).
    return format_style(sql) % tuple([str(a) if type(a) is int else _literal(connection, a) for a in args])


class MysqlErrors(DriverErrors):
    """PyMySQL's errors, read by their MySQL error codes."""

    backend = "MySQL"
    statement_errors = (pymysql.err.IntegrityError, pymysql.err.OperationalError, *CONNECTION_ERRORS)
    driver_errors = (pymysql.err.MySQLError, *CONNECTION_ERRORS)
    permission_hint = (
        "grant the user CREATE, ALTER, INDEX, REFERENCES and CREATE ROUTINE on the database,"
        " or run `gateway init-db` once as a user who has them"
    )

    def unique_constraint(self, exc: BaseException) -> str | None:
        if isinstance(exc, pymysql.err.IntegrityError) and exc.args[0] == DUPLICATE_KEY:
            return str(exc.args[1])
        return None

    def is_unavailable(self, exc: BaseException) -> bool:
        if isinstance(exc, CONNECTION_ERRORS):
            return True
        return isinstance(exc, pymysql.err.OperationalError) and exc.args[0] in CONNECTION_CODES

    def is_permission_denied(self, exc: BaseException) -> bool:
        return isinstance(exc, pymysql.err.MySQLError) and bool(exc.args) and exc.args[0] in PRIVILEGE_DENIED

    def is_timeout(self, exc: BaseException) -> bool:
        # MariaDB's max_statement_time (1969), MySQL's max_execution_time (3024).
        return isinstance(exc, pymysql.err.MySQLError) and bool(exc.args) and exc.args[0] in (1969, 3024)

    def cause(self, exc: BaseException) -> str:
        if isinstance(exc, pymysql.err.MySQLError) and len(exc.args) > 1:
            return f"{exc.args[1]} ({type(exc).__name__} {exc.args[0]})"
        return super().cause(exc)


ERRORS = MysqlErrors()


class MysqlConnection(DriverConnection[aiomysql.Connection]):
    """An aiomysql connection as the shared queries use it."""

    __slots__ = ()
    errors = ERRORS

    async def _run(self, sql: str, args: Sequence[Any]) -> aiomysql.DictCursor:
        connection = self.driver
        cursor = await connection.cursor(aiomysql.DictCursor)
        await cursor.execute(_statement(connection, sql, args))
        return cursor

    async def _fetch(self, sql: str, args: Sequence[Any]) -> list[Row]:
        cursor = await self._run(sql, args)
        rows = await cursor.fetchall()
        await cursor.close()
        return list(rows)

    async def _execute(self, sql: str, args: Sequence[Any]) -> int:
        cursor = await self._run(sql, args)
        await cursor.close()
        return int(cursor.rowcount)

    async def _insert(self, sql: str, args: Sequence[Any]) -> int:
        cursor = await self._run(sql, args)
        await cursor.close()
        return int(cursor.lastrowid) if cursor.rowcount else 0


class AnswerCut(Exception):
    """The server warned while building the fast path's JSON: a result past max_allowed_packet is
    cut (an array) or NULL (an object), so the answer cannot be sent."""

    def __init__(self, warnings: int) -> None:
        super().__init__(f"the server cut the compiled answer ({warnings} warnings)")


async def json_row(
    conn: aiomysql.Connection, sql: str, args: Sequence[Any], tracing: Tracing | None
) -> tuple[bytes | None, bool]:
    """The fast path's one statement (`SELECT … AS data[, … AS ok]`): a plain cursor, its one row
    read as a tuple, no wrapper. Raises AnswerCut when the statement raised a warning."""
    try:
        cursor = await conn.cursor()
        if tracing is None:
            await cursor.execute(_statement(conn, sql, args))
        else:
            with tracing.sql("SELECT"):
                await cursor.execute(_statement(conn, sql, args))
        row = await cursor.fetchone()
        await cursor.close()
    except ERRORS.statement_errors as exc:
        ERRORS.reraise(exc)
    # aiomysql only hands warnings to Python's `warnings` (printed, by default): the count is on its result.
    warnings = getattr(cursor._result, "warning_count", 0)
    if warnings:
        raise AnswerCut(warnings)
    value = row[0]
    # MariaDB labels a JSON built only of computed ASCII text as binary: bytes already.
    if isinstance(value, str):
        value = value.encode()
    return value, len(row) == 1 or bool(row[1])


def pool_streams(pool: aiomysql.Pool) -> list[asyncio.StreamWriter]:
    """The streams of the pool's connections, from aiomysql's private attributes (none if renamed)."""
    connections = [*getattr(pool, "_free", ()), *getattr(pool, "_used", ())]
    streams = (getattr(conn, "_writer", None) for conn in connections)
    return [stream for stream in streams if isinstance(stream, asyncio.StreamWriter)]


async def _sockets_closed(streams: list[asyncio.StreamWriter]) -> None:
    # aiomysql closes a connection without waiting: over TLS its socket stays open until the
    # server answers the close_notify, and a loop stopped before then leaks it.
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(SOCKETS_CLOSE_TIMEOUT):
            await asyncio.gather(*(stream.wait_closed() for stream in streams), return_exceptions=True)


async def pool_closed(
    closing: asyncio.Task[None], pool: aiomysql.Pool, streams: list[asyncio.StreamWriter]
) -> None:
    """Wait for `pool`'s `closing`, terminating it after the close timeout; then for its sockets."""
    await close_or_terminate(closing, pool.terminate, "MySQL pool")
    await _sockets_closed(streams)
