"""asyncpg as the PostgreSQL data source uses it: its errors, how each connection is set up, the
connection the shared queries use, and the fast path's one statement."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import asyncpg

from gateway.connect.credentials import Credentials
from gateway.datasources.protocol import DataSourceUnavailable
from gateway.datasources.sql.connection import DriverConnection
from gateway.datasources.sql.errors import DriverErrors
from gateway.datasources.sql.placeholders import numbered_style
from gateway.datasources.sql.rows import Row
from gateway.settings import Settings

if TYPE_CHECKING:
    from gateway.telemetry.tracing import Tracing

__all__ = [
    "CONNECTION_ERRORS",
    "ERRORS",
    "REFUSED",
    "PoolExhausted",
    "PostgresConnection",
    "json_as_bytes",
    "json_row",
    "keep_session",
    "pooler_hint",
    "refused",
    "release",
    "session_options",
    "take_idle",
    "target",
]

log = logging.getLogger(__name__)

CONNECTION_ERRORS = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
)


class PostgresErrors(DriverErrors):
    backend = "PostgreSQL"
    statement_errors = (asyncpg.UniqueViolationError, asyncpg.QueryCanceledError, *CONNECTION_ERRORS)
    driver_errors = (asyncpg.PostgresError, *CONNECTION_ERRORS)
    permission_hint = (
        "grant the user CREATE on schema public, or run `gateway init-db` once as the database owner"
    )

    def unique_constraint(self, exc: BaseException) -> str | None:
        if isinstance(exc, asyncpg.UniqueViolationError):
            return exc.constraint_name or "unique"
        return None

    def is_unavailable(self, exc: BaseException) -> bool:
        # A statement's TimeoutError is asyncpg's command_timeout (DB_STATEMENT_CACHE=false): a timeout.
        return isinstance(exc, CONNECTION_ERRORS) and not isinstance(exc, TimeoutError)

    def unavailable(self, exc: BaseException) -> DataSourceUnavailable:
        return DataSourceUnavailable(f"{self.backend} unavailable ({type(exc).__name__}){pooler_hint(exc)}")

    def is_permission_denied(self, exc: BaseException) -> bool:
        return isinstance(exc, asyncpg.InsufficientPrivilegeError)

    def is_timeout(self, exc: BaseException) -> bool:
        return isinstance(exc, asyncpg.QueryCanceledError | TimeoutError)


ERRORS = PostgresErrors()
REFUSED = (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError)


def refused(exc: BaseException) -> bool:
    return isinstance(exc, REFUSED)


# asyncpg's pool internals that take_idle and release use; an asyncpg without them gets the public calls.
_HOLDER = getattr(asyncpg.pool, "PoolConnectionHolder", None)
_INLINE = _HOLDER is not None and all(hasattr(_HOLDER, name) for name in ("acquire", "release", "_release"))


async def take_idle(pool: asyncpg.Pool) -> asyncpg.Connection | None:
    """An idle connection of `pool`, taken as `pool.acquire()` takes it, or None when none is idle.

    None means acquire() would wait for another request's release: the caller bounds that wait.
    An idle connection needs no bound (a new one the pool opens is bounded by DB_CONNECT_TIMEOUT)
    and is taken without acquire()'s four coroutine layers, ~2% of a point lookup.
    """
    queue = getattr(pool, "_queue", None)
    if not isinstance(queue, asyncio.Queue) or queue.empty() or pool.is_closing():
        return None
    if not _INLINE:
        return await pool.acquire()  # type: ignore[no-any-return]
    holder = queue.get_nowait()
    try:
        proxy = await holder.acquire()
    except BaseException:
        queue.put_nowait(holder)
        raise
    holder._timeout = None  # release() then applies none, as after acquire() without one
    return proxy  # type: ignore[no-any-return]


async def release(pool: asyncpg.Pool, conn: asyncpg.Connection, wait: float) -> None:
    """Return `conn` to `pool`, as `pool.release(conn)` does, without its extra task when it can.

    `Pool.release` runs the release in a new task under `asyncio.shield`, so that a cancellation
    cannot strand the connection halfway; that task and the loop turns it takes are ~7% of a
    point lookup's CPU. A connection that is neither cancelling a statement nor inside a
    transaction releases without suspending (the pool's reset is `keep_session`, which awaits
    nothing), so nothing can interrupt it: its release runs inline.

    One stopped by a time limit mid-statement waits for the server's word that its cancel, sent
    over a new connection, took effect; a network that stalls would hold that wait, and the limit's
    answer with it, without end. It goes on in the background instead, and a release that has to
    roll back waits no longer than `wait` (DB_CONNECT_TIMEOUT): past it the connection is dropped.
    """
    try:
        holder, con = conn._holder, conn._con  # type: ignore[attr-defined]
        cancelling = con is not None and con._protocol._is_cancelling()
        inline = (
            _INLINE
            and con is not None
            and not cancelling
            and holder._pool is pool
            and pool._reset is keep_session
            and not pool.is_closing()
            and con._top_xact is None
            and not con._protocol.is_in_transaction()
        )
    except AttributeError:
        cancelling = inline = False
    if cancelling:
        task = asyncio.get_running_loop().create_task(_release_within(pool, conn, wait))
        _RELEASING.add(task)
        task.add_done_callback(_RELEASING.discard)
        return
    if not inline:
        await _release_within(pool, conn, wait)
        return
    con._on_release()
    await holder.release(holder._timeout)


_RELEASING: set[asyncio.Task[None]] = set()  # held so that a release under way is not collected


async def _release_within(pool: asyncpg.Pool, conn: asyncpg.Connection, wait: float) -> None:
    try:
        await pool.release(conn, timeout=wait)
    except Exception as exc:  # asyncpg has dropped the connection: the pool opens another
        log.info("PostgreSQL connection dropped at its release (%s)", type(exc).__name__)


async def keep_session(conn: asyncpg.Connection) -> None:
    """Nothing to reset on release: asyncpg still rolls back an open transaction itself.

    The default reset is a round trip per request (UNLISTEN, RESET ALL, advisory unlock) undoing
    session state this gateway never leaves behind: no LISTEN, no SET, and the migration lock
    ends with its transaction.
    """


def session_options(s: Settings) -> dict[str, Any]:
    """How each connection is set up: for a direct server, or for a transaction pooler."""
    if s.db_statement_cache:
        # The server stops a statement past it, and a cancelled request cancels its statement.
        return {"server_settings": {"statement_timeout": str(int(s.db_statement_timeout * 1000))}}
    # A transaction pooler (PgBouncer before 1.21, RDS Proxy) hands each transaction to any server
    # connection: a named prepared statement may not exist there, and PgBouncer refuses startup
    # settings. Unnamed statements only, and the gateway cancels a statement past the timeout.
    return {
        "statement_cache_size": 0,
        "command_timeout": s.db_statement_timeout,
        # asyncpg announces 'utf-8', which PgBouncer compares as text with the server's UTF8 and
        # "corrects" with a SET before every transaction: a round trip each. The server's spelling.
        "server_settings": {"client_encoding": "UTF8"},
    }


def pooler_hint(exc: BaseException) -> str:
    """What to do when `exc` is PgBouncer refusing the startup settings of a direct connection."""
    if isinstance(exc, asyncpg.ProtocolViolationError) and "unsupported startup parameter" in str(exc):
        return "; this is a connection pooler (PgBouncer): set DB_STATEMENT_CACHE=false"
    return ""


async def json_as_bytes(conn: asyncpg.Connection) -> None:
    """Each new connection reads a `json` value as its UTF-8 bytes (a `json` parameter is given as
    text). The compiled path's answer is such a value, put into the response as it arrived: asyncpg's
    default decoded it to text, which the gateway encoded back, two copies of an N answer's 26 KB."""
    await conn.set_type_codec("json", schema="pg_catalog", encoder=str.encode, decoder=bytes, format="binary")


async def json_row(
    conn: asyncpg.Connection, sql: str, args: Sequence[Any], tracing: Tracing | None
) -> tuple[bytes | None, bool]:
    """The fast path's one statement: straight to asyncpg, no wrapper, no row dicts."""
    try:
        if tracing is None:
            row = await conn.fetchrow(numbered_style(sql), *args)
        else:
            with tracing.sql("SELECT"):
                row = await conn.fetchrow(numbered_style(sql), *args)
    except ERRORS.statement_errors as exc:
        ERRORS.reraise(exc)
    value = row["data"]
    if isinstance(value, str):  # a statement whose value is text, not json
        value = value.encode()
    return value, bool(row.get("ok", True))


def target(credentials: Credentials) -> dict[str, Any]:
    return {
        "host": credentials.host,
        "port": credentials.port,
        "user": credentials.user,
        "password": credentials.password.get_secret_value(),
        "database": credentials.database,
    }


class PostgresConnection(DriverConnection[asyncpg.Connection]):
    __slots__ = ()
    errors = ERRORS

    async def _fetch(self, sql: str, args: Sequence[Any]) -> list[Row]:
        return [dict(record) for record in await self.driver.fetch(numbered_style(sql), *args)]

    async def _execute(self, sql: str, args: Sequence[Any]) -> int:
        status: str = await self.driver.execute(numbered_style(sql), *args)
        count = status.rpartition(" ")[2]
        return int(count) if count.isdigit() else 0

    async def _insert(self, sql: str, args: Sequence[Any]) -> int:
        return int(await self.driver.fetchval(numbered_style(sql + " RETURNING id"), *args) or 0)


class PoolExhausted(DataSourceUnavailable):
    """Every connection is in use: the server answers, the pool is busy."""
