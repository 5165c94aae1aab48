"""The PostgreSQL data source: an asyncpg pool."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any

import asyncpg

from gateway.connect.credentials import CredentialProvider, Credentials, EnvCredentials, open_credentials
from gateway.connect.rotation import after_refusal
from gateway.connect.tls import client_ssl_context, explain_tls_failure
from gateway.datasources.changes import ChangeWatch
from gateway.datasources.postgres.json_sql import PostgresJsonSql
from gateway.datasources.postgres.notifications import PostgresNotifications
from gateway.datasources.postgres.replica import Replica
from gateway.datasources.protocol import DataSource, DataSourceUnavailable, SourceStats
from gateway.datasources.records import NewSession, SessionRecord
from gateway.datasources.sql.closing import close_or_terminate
from gateway.datasources.sql.connection import DriverConnection
from gateway.datasources.sql.errors import DriverErrors
from gateway.datasources.sql.migrations import apply_migrations, load_migrations
from gateway.datasources.sql.placeholders import numbered_style
from gateway.datasources.sql.rows import Row, SqlConnection
from gateway.datasources.sql.source import SqlDataSource, created_session
from gateway.errors import NotFound, Unavailable
from gateway.settings import Settings

if TYPE_CHECKING:
    from gateway.telemetry.tracing import Tracing

__all__ = ["PoolExhausted", "PostgresDataSource", "ReplicaReads"]

log = logging.getLogger(__name__)

# Any constant works; it only has to be the same in every gateway process.
_MIGRATION_LOCK_KEY = 7_461_190_002

# createShootingSession in one statement (atomic without BEGIN/COMMIT): one round trip, not six.
# No row is written unless the user, and the group when one is given, exist.
_CREATE_SESSION = """
WITH owner AS (SELECT id FROM users WHERE id = ?),
grp AS (SELECT id FROM club_groups WHERE id = ?),
session AS (
    INSERT INTO shooting_sessions (user_id, group_id, started_at, location, discipline,
        distance_meters, notes, shot_count, total_tenths, created_at)
    SELECT owner.id, grp_id, ?, ?, ?, ?, ?, ?, ?, now_at FROM owner,
        (SELECT ?::bigint AS grp_id, ?::timestamptz AS now_at) given
    WHERE given.grp_id IS NULL OR EXISTS (SELECT 1 FROM grp)
    RETURNING id, group_id, created_at
),
shot AS (
    INSERT INTO shots (session_id, sequence, score_tenths, x, y)
    SELECT session.id, s.n, s.score, s.x, s.y
    FROM session, unnest(?::smallint[], ?::float8[], ?::float8[]) WITH ORDINALITY AS s(score, x, y, n)
),
activity AS (
    INSERT INTO activities (kind, created_at, user_id, group_id, session_id, session_ref)
    SELECT 'SESSION_CREATED', session.created_at, ?, session.group_id, session.id, session.id FROM session
)
SELECT (SELECT id FROM session) AS session_id, EXISTS (SELECT 1 FROM owner) AS user_found
"""
_CONNECTION_ERRORS = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
)


class _PostgresErrors(DriverErrors):
    backend = "PostgreSQL"
    statement_errors = (asyncpg.UniqueViolationError, asyncpg.QueryCanceledError, *_CONNECTION_ERRORS)
    driver_errors = (asyncpg.PostgresError, *_CONNECTION_ERRORS)
    permission_hint = (
        "grant the user CREATE on schema public, or run `gateway init-db` once as the database owner"
    )

    def unique_constraint(self, exc: BaseException) -> str | None:
        if isinstance(exc, asyncpg.UniqueViolationError):
            return exc.constraint_name or "unique"
        return None

    def is_unavailable(self, exc: BaseException) -> bool:
        # A statement's TimeoutError is asyncpg's command_timeout (DB_STATEMENT_CACHE=false): a timeout.
        return isinstance(exc, _CONNECTION_ERRORS) and not isinstance(exc, TimeoutError)

    def is_permission_denied(self, exc: BaseException) -> bool:
        return isinstance(exc, asyncpg.InsufficientPrivilegeError)

    def is_timeout(self, exc: BaseException) -> bool:
        return isinstance(exc, asyncpg.QueryCanceledError | TimeoutError)


_ERRORS = _PostgresErrors()
_REFUSED = (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError)


def _refused(exc: BaseException) -> bool:
    return isinstance(exc, _REFUSED)


def _has_idle_connection(pool: asyncpg.Pool) -> bool:
    """Whether acquire() will not wait for another request to release a connection.

    Then the acquire timeout has nothing to bound (a new connection is bounded by
    DB_CONNECT_TIMEOUT), and arming it costs a point lookup about 6% of its throughput. The
    pool's queue is asyncpg's private attribute: without it, every acquire is timed.
    """
    queue = getattr(pool, "_queue", None)
    return isinstance(queue, asyncio.Queue) and not queue.empty()


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Nothing to reset on release: asyncpg still rolls back an open transaction itself.

    The default reset is a round trip per request (UNLISTEN, RESET ALL, advisory unlock) undoing
    session state this gateway never leaves behind: no LISTEN, no SET, and the migration lock
    ends with its transaction.
    """


def _session_options(s: Settings) -> dict[str, Any]:
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


async def _json_row(
    conn: asyncpg.Connection, sql: str, args: Sequence[Any], tracing: Tracing | None
) -> tuple[str | None, bool]:
    """The fast path's one statement: straight to asyncpg, no wrapper, no row dicts."""
    try:
        if tracing is None:
            row = await conn.fetchrow(numbered_style(sql), *args)
        else:
            with tracing.sql("SELECT"):
                row = await conn.fetchrow(numbered_style(sql), *args)
    except _ERRORS.statement_errors as exc:
        if (ours := _ERRORS.converted(exc)) is None:
            raise
        raise ours from exc
    return row["data"], bool(row.get("ok", True))


def _target(credentials: Credentials) -> dict[str, Any]:
    return {
        "host": credentials.host,
        "port": credentials.port,
        "user": credentials.user,
        "password": credentials.password.get_secret_value(),
        "database": credentials.database,
    }


class _Connection(DriverConnection[asyncpg.Connection]):
    __slots__ = ()
    errors = _ERRORS

    async def _fetch(self, sql: str, args: Sequence[Any]) -> list[Row]:
        return [dict(record) for record in await self.driver.fetch(numbered_style(sql), *args)]

    async def _execute(self, sql: str, args: Sequence[Any]) -> int:
        status: str = await self.driver.execute(numbered_style(sql), *args)
        count = status.rpartition(" ")[2]
        return int(count) if count.isdigit() else 0

    async def _insert(self, sql: str, args: Sequence[Any]) -> int:
        return int(await self.driver.fetchval(numbered_style(sql + " RETURNING id"), *args) or 0)


class PostgresDataSource(SqlDataSource):
    """PostgreSQL through an asyncpg pool sized and timed by the DB_POOL_* settings."""

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self.json_sql = PostgresJsonSql()
        self._settings = settings
        self._pool: asyncpg.Pool | None = None
        self._credentials: CredentialProvider = EnvCredentials(settings)
        # The host and port new connections dial (the secret's may differ from DB_HOST), for TLS errors.
        self._where = (settings.db_host, settings.database_port)
        self.auth_retries = 0
        self._ssl: ssl.SSLContext | None = None
        self._waiting = 0
        self._replica: Replica | None = None
        self._reads: ReplicaReads | None = None

    def change_watch(self, poll_interval: float) -> ChangeWatch:
        """LISTEN/NOTIFY on a connection of its own; behind a transaction pooler (DB_STATEMENT_CACHE=false),
        which cannot carry a LISTEN between transactions, the table is read every `poll_interval`."""
        if not self._settings.db_statement_cache:
            return super().change_watch(poll_interval)
        return PostgresNotifications(self, self._listening_connection)

    async def _listening_connection(self) -> asyncpg.Connection:
        """A new connection outside the pool, made as the pool makes its own (credentials, TLS)."""
        if self._pool is None:
            raise DataSourceUnavailable("pool is closed")
        return await self._connect(ssl=self._ssl or False, timeout=self._settings.db_connect_timeout)

    def stats(self) -> SourceStats:
        pool = self._pool
        reads = self._credentials.reads()
        if pool is None:
            return SourceStats(secret_reads=reads)
        size = pool.get_size()
        return SourceStats(size, size - pool.get_idle_size(), self._waiting, pool.get_max_size(), reads)

    async def _open(self) -> None:
        s = self._settings
        self._ssl = client_ssl_context(s)
        self._credentials = await open_credentials(s)
        first = await self._credentials.current()
        self._where = (first.host, first.port)
        try:
            self._pool = await self._create_pool()
        except (*_CONNECTION_ERRORS, asyncpg.PostgresError) as exc:
            tls_failure = explain_tls_failure(exc, *self._where)
            if tls_failure is not None:
                raise tls_failure from exc
            raise DataSourceUnavailable(
                f"cannot connect to PostgreSQL at {first.host}:{first.port}"
                f" as {first.user} ({type(exc).__name__}: {exc})"
            ) from exc
        migrating = f"apply migrations to PostgreSQL database {first.database} as user {first.user}"
        with _ERRORS.refusing_start(migrating):
            async with self._acquire() as conn, conn.transaction():
                # A transaction's lock, not a session's: a transaction pooler (PgBouncer, RDS Proxy)
                # may run the unlock on another server connection, leaving the lock held forever.
                await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK_KEY)
                await apply_migrations(_Connection(conn, self), load_migrations(__name__))
        if s.db_read_host is not None:
            self._replica = Replica(
                f"{s.db_read_host}:{s.read_port}",
                partial(self._create_pool, (s.db_read_host, s.read_port)),
                s.db_connect_timeout,
            )
            await self._replica.open()
            self._reads = ReplicaReads(self, self._replica, (s.db_read_host, s.read_port))

    async def _create_pool(self, replica: tuple[str, int] | None = None) -> asyncpg.Pool:
        """A pool to the primary, or to the read replica at `replica` (host, port) with the same login."""
        s = self._settings
        pool: asyncpg.Pool = await asyncpg.create_pool(
            # Each new connection asks for the current credentials: rotation needs no restart.
            connect=partial(self._connect, replica=replica),
            # False, not asyncpg's default "prefer", which would fall back to plaintext.
            ssl=self._ssl or False,
            min_size=s.db_pool_min,
            max_size=s.db_pool_max,
            max_inactive_connection_lifetime=s.db_idle_timeout,
            timeout=s.db_connect_timeout,
            reset=_keep_session,
            **_session_options(s),
        )
        return pool

    async def _connect(
        self, *args: Any, replica: tuple[str, int] | None = None, **kwargs: Any
    ) -> asyncpg.Connection:
        """A new connection with the current credentials (a fresh IAM token under DB_IAM_AUTH).

        On a refused password it tries the credentials read again, then AWSPENDING, backing off
        for up to DB_CONNECT_TIMEOUT: a rotation may change the database before the secret.
        `replica`: the read replica's host and port instead of the primary's.
        """

        async def attempt(credentials: Credentials) -> asyncpg.Connection:
            if replica is not None:
                # Signed for the replica's host under DB_IAM_AUTH; its TLS name is checked the same way.
                credentials = replace(credentials, host=replica[0], port=replica[1])
            login = await self._credentials.login(credentials)
            if replica is None:
                self._where = (login.host, login.port)
            return await asyncpg.connect(*args, **_target(login), **kwargs)

        credentials = await self._credentials.current()
        try:
            return await attempt(credentials)
        except _REFUSED as exc:
            conn = await after_refusal(
                self._credentials, credentials, exc, attempt, _refused, self._settings.db_connect_timeout
            )
        self.auth_retries += 1
        log.info("PostgreSQL refused the password; connected with the credentials read again")
        return conn

    async def fetch_json(self, sql: str, args: Sequence[Any] = ()) -> tuple[str | None, bool]:
        # The fast path's one statement per request: no context manager (a generator-based one
        # costs a point lookup ~3% of its throughput).
        pool, conn = await self._checkout()
        try:
            self.statements += 1
            return await _json_row(conn, sql, args, self.tracing)
        finally:
            await pool.release(conn)

    def for_queries(self) -> DataSource:
        return self._reads or self

    def degraded(self) -> str | None:
        return self._replica.down if self._replica is not None else None

    async def create_session(self, new: NewSession) -> SessionRecord:
        now = datetime.now(UTC)
        args = (
            new.user_id, new.group_id,
            new.started_at, new.location, new.discipline, new.distance_meters, new.notes,
            len(new.shots), sum(shot.score_tenths for shot in new.shots),
            new.group_id, now,
            [s.score_tenths for s in new.shots], [s.x for s in new.shots], [s.y for s in new.shots],
            new.user_id,
        )
        async with self.connection() as conn:
            (row,) = await conn.fetch(_CREATE_SESSION, args)
        if not row["user_found"]:
            raise NotFound("user")
        if row["session_id"] is None:
            raise NotFound("group")
        return created_session(row["session_id"], new)

    async def close(self) -> None:
        replica, self._replica, self._reads = self._replica, None, None
        if replica is not None:
            await replica.close()
        pool, self._pool = self._pool, None
        if pool is not None:
            await close_or_terminate(pool.close(), pool.terminate, "PostgreSQL pool")

    async def _checkout(
        self, pool: asyncpg.Pool | None = None, where: tuple[str, int] | None = None
    ) -> tuple[asyncpg.Pool, asyncpg.Connection]:
        """A connection from `pool` (the primary's by default, at `where`), and the pool to return it to."""
        pool = pool or self._pool
        if pool is None:
            raise DataSourceUnavailable("pool is closed")
        try:
            if _has_idle_connection(pool):
                return pool, await pool.acquire()
            # asyncio.timeout, not acquire(timeout=): that one runs each acquire in a new task.
            self._waiting += 1
            try:
                async with asyncio.timeout(self._settings.db_acquire_timeout):
                    return pool, await pool.acquire()
            finally:
                self._waiting -= 1
        except TimeoutError:
            raise PoolExhausted("no database connection free within DB_ACQUIRE_TIMEOUT") from None
        except (*_CONNECTION_ERRORS, asyncpg.PostgresError) as exc:
            raise explain_tls_failure(exc, *(where or self._where)) or _ERRORS.unavailable(exc) from exc

    @asynccontextmanager
    async def _acquire(self) -> AsyncIterator[asyncpg.Connection]:
        pool, conn = await self._checkout()
        try:
            yield conn
        finally:
            await pool.release(conn)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[_Connection]:
        async with self._acquire() as conn:
            yield _Connection(conn, self)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[_Connection]:
        async with self._acquire() as conn:
            try:
                async with conn.transaction():
                    yield _Connection(conn, self)
            except _CONNECTION_ERRORS as exc:
                raise _ERRORS.unavailable(exc) from exc


class PoolExhausted(DataSourceUnavailable):
    """Every connection is in use: the server answers, the pool is busy."""


class ReplicaReads(SqlDataSource):
    """What query operations read from: the replica while it answers, else the primary.

    A read the replica fails because it cannot be reached runs again on the primary (a read
    changes nothing), and the replica is left out until its probe finds it answering again.
    """

    def __init__(self, primary: PostgresDataSource, replica: Replica, where: tuple[str, int]) -> None:
        super().__init__()
        self.json_sql = primary.json_sql
        self._primary = primary
        self._replica = replica
        self._where = where

    async def _open(self) -> None:
        raise DataSourceUnavailable("a replica's reads open with their primary")

    def stats(self) -> SourceStats:
        return self._primary.stats()

    async def close(self) -> None:
        """Nothing: the primary owns both pools."""

    async def _take(self) -> tuple[asyncpg.Pool, asyncpg.Connection] | None:
        """A replica connection, or None while the replica is down (it is marked down on failing)."""
        pool = self._replica.pool
        if pool is None:
            return None
        try:
            return await self._primary._checkout(pool, self._where)
        except PoolExhausted:
            raise  # busy, not down
        except Unavailable as exc:
            self._replica.lost(exc)
            return None

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[SqlConnection]:
        taken = await self._take()
        if taken is None:
            async with self._primary.connection() as primary:
                yield primary
            return
        pool, conn = taken
        try:
            yield _Connection(conn, self._primary)
        finally:
            await pool.release(conn)

    # Writes go to the primary: the shared ones through transaction(), PostgreSQL's own directly.
    def transaction(self) -> AbstractAsyncContextManager[SqlConnection]:
        return self._primary.transaction()

    async def create_session(self, new: NewSession) -> SessionRecord:
        return await self._primary.create_session(new)

    async def _fetch(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        taken = await self._take()
        if taken is not None:
            pool, conn = taken
            try:
                return await _Connection(conn, self._primary).fetch(sql, args)
            except DataSourceUnavailable as exc:
                self._replica.lost(exc)  # the connection was lost mid-read: the primary answers it
            finally:
                await pool.release(conn)
        return await self._primary._fetch(sql, args)

    async def fetch_json(self, sql: str, args: Sequence[Any] = ()) -> tuple[str | None, bool]:
        taken = await self._take()
        if taken is not None:
            pool, conn = taken
            try:
                self._primary.statements += 1
                return await _json_row(conn, sql, args, self._primary.tracing)
            except DataSourceUnavailable as exc:
                self._replica.lost(exc)
            finally:
                await pool.release(conn)
        return await self._primary.fetch_json(sql, args)
