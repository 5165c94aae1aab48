"""The PostgreSQL data source: an asyncpg pool."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from typing import Any

import asyncpg

from gateway.connect.credentials import CredentialProvider, Credentials, EnvCredentials, open_credentials
from gateway.connect.rotation import after_refusal
from gateway.connect.tls import ClientTls, unix_socket_refusal
from gateway.datasources.changes import BoundedReader, ChangeWatch
from gateway.datasources.postgres.driver import (
    CONNECTION_ERRORS,
    ERRORS,
    REFUSED,
    PoolExhausted,
    PostgresConnection,
    json_as_bytes,
    json_row,
    keep_session,
    pooler_hint,
    refused,
    release,
    session_options,
    take_idle,
    target,
)
from gateway.datasources.postgres.json_sql import PostgresJsonSql
from gateway.datasources.postgres.notifications import PostgresNotifications
from gateway.datasources.postgres.replica import Replica, ReplicaReads
from gateway.datasources.protocol import DataSource, DataSourceUnavailable, SourceStats
from gateway.datasources.records import NewSession, SessionRecord
from gateway.datasources.sql.closing import close_or_terminate
from gateway.datasources.sql.migrations import apply_migrations, load_migrations
from gateway.datasources.sql.source import SqlDataSource
from gateway.datasources.sql.writes import created_session
from gateway.deadlines import Committing, Deadline
from gateway.errors import NotFound, WriteUnconfirmed
from gateway.settings import Settings

__all__ = ["PostgresDataSource"]

log = logging.getLogger(__name__)

# Any constant works; it only has to be the same in every gateway process.
_MIGRATION_LOCK_KEY = 7_461_190_002
_MIGRATIONS_RECORDED = "SELECT to_regclass('schema_migrations') IS NOT NULL AS present"

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
        self._tls = ClientTls(settings)
        self._waiting = 0
        self._replica: Replica | None = None
        self._reads: ReplicaReads | None = None

    def change_watch(self, poll_interval: float, answer_within: float) -> ChangeWatch:
        """LISTEN/NOTIFY on a connection of its own; behind a transaction pooler (DB_STATEMENT_CACHE=false),
        which cannot carry a LISTEN between transactions, the table is read every `poll_interval`."""
        if not self._settings.db_statement_cache:
            return super().change_watch(poll_interval, answer_within)
        reader = BoundedReader(self, answer_within)
        return PostgresNotifications(reader, self._listening_connection, answer_within)

    async def _listening_connection(self) -> asyncpg.Connection:
        """A new connection outside the pool, made as the pool makes its own (credentials, TLS)."""
        if self._pool is None:
            raise DataSourceUnavailable("pool is closed")
        return await self._connect(timeout=self._settings.db_connect_timeout)

    def stats(self) -> SourceStats:
        pool = self._pool
        reads = self._credentials.reads()
        if pool is None:
            return SourceStats(secret_reads=reads)
        size = pool.get_size()
        return SourceStats(size, size - pool.get_idle_size(), self._waiting, pool.get_max_size(), reads)

    async def _open(self) -> None:
        s = self._settings
        self._tls.context()  # a CA or client certificate that cannot be used stops the start here
        self._credentials = await open_credentials(s)
        first = await self._credentials.current()
        self._where = (first.host, first.port)
        try:
            self._pool = await self._create_pool()
        except (*CONNECTION_ERRORS, asyncpg.PostgresError) as exc:
            tls_failure = self._tls.explain(exc, *self._where)
            if tls_failure is not None:
                raise tls_failure from exc
            raise DataSourceUnavailable(
                f"cannot connect to PostgreSQL at {first.host}:{first.port}"
                f" as {first.user} ({type(exc).__name__}: {exc}){pooler_hint(exc)}"
            ) from exc
        migrating = f"apply migrations to PostgreSQL database {first.database} as user {first.user}"
        with ERRORS.refusing_start(migrating):
            async with self._acquire() as conn, conn.transaction():
                # A transaction's lock, not a session's: a transaction pooler (PgBouncer, RDS Proxy)
                # may run the unlock on another server connection, leaving the lock held forever.
                await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK_KEY)
                await apply_migrations(
                    PostgresConnection(conn, self), load_migrations(__name__), _MIGRATIONS_RECORDED
                )
        if s.db_read_host is not None:
            self._replica = Replica(
                f"{s.db_read_host}:{s.read_port}",
                partial(self._replica_pool, (s.db_read_host, s.read_port)),
                s.db_connect_timeout,
            )
            await self._replica.open()
            self._reads = ReplicaReads(
                self,
                self._replica,
                (s.db_read_host, s.read_port),
                s.db_statement_timeout,
                s.db_connect_timeout,
            )

    async def _replica_pool(self, where: tuple[str, int]) -> asyncpg.Pool:
        """The read replica's pool; a TLS failure is explained as the primary's is (cause and fix)."""
        try:
            return await self._create_pool(where)
        except (*CONNECTION_ERRORS, asyncpg.PostgresError) as exc:
            tls_failure = self._tls.explain(exc, *where)
            if tls_failure is None:
                raise
            raise tls_failure from exc

    async def _create_pool(self, replica: tuple[str, int] | None = None) -> asyncpg.Pool:
        """A pool to the primary, or to the read replica at `replica` (host, port) with the same login."""
        s = self._settings
        pool: asyncpg.Pool = await asyncpg.create_pool(
            # Each new connection asks for the current credentials: rotation needs no restart.
            connect=partial(self._connect, replica=replica),
            min_size=s.db_pool_min,
            max_size=s.db_pool_max,
            max_inactive_connection_lifetime=s.db_idle_timeout,
            timeout=s.db_connect_timeout,
            reset=keep_session,
            init=json_as_bytes,
            **session_options(s),
        )
        return pool

    async def _connect(
        self, *args: Any, replica: tuple[str, int] | None = None, **kwargs: Any
    ) -> asyncpg.Connection:
        """A new connection with the current credentials (a fresh IAM token under DB_IAM_AUTH).

        On a refused password it tries the credentials read again, then AWSPENDING, backing off
        for up to DB_CONNECT_TIMEOUT: a rotation may change the database before the secret.
        `replica`: the read replica's host and port instead of the primary's. TLS as DB_SSL says,
        with the CA file as it is on disk now.
        """
        # False, not asyncpg's default "prefer", which would fall back to plaintext.
        kwargs["ssl"] = self._tls.context() or False

        async def attempt(credentials: Credentials) -> asyncpg.Connection:
            if replica is not None:
                # Signed for the replica's host under DB_IAM_AUTH; its TLS name is checked the same way.
                credentials = replace(credentials, host=replica[0], port=replica[1])
            # asyncpg would take a socket path with no TLS at all, whatever `ssl` says.
            refusal = unix_socket_refusal(credentials.host) if kwargs["ssl"] else None
            if refusal is not None:
                raise refusal
            login = await self._credentials.login(credentials)
            if replica is None:
                self._where = (login.host, login.port)
            return await asyncpg.connect(*args, **target(login), **kwargs)

        credentials = await self._credentials.current()
        try:
            return await attempt(credentials)
        except REFUSED as exc:
            conn = await after_refusal(
                self._credentials, credentials, exc, attempt, refused, self._settings.db_connect_timeout
            )
        self.auth_retries += 1
        log.info("PostgreSQL refused the password; connected with the credentials read again")
        return conn

    async def fetch_json(self, sql: str, args: Sequence[Any] = ()) -> tuple[bytes | None, bool]:
        # The fast path's one statement per request: no context manager (a generator-based one
        # costs a point lookup ~3% of its throughput).
        pool, conn = await self._checkout()
        try:
            self.statements += 1
            return await json_row(conn, sql, args, self.tracing)
        finally:
            await release(pool, conn, self._settings.db_connect_timeout)

    def for_queries(self) -> DataSource:
        return self._reads or self

    def degraded(self) -> str | None:
        return self._replica.down if self._replica is not None else None

    async def create_session(self, new: NewSession) -> SessionRecord:
        now = datetime.now(UTC)
        args = (
            new.user_id,
            new.group_id,
            new.started_at,
            new.location,
            new.discipline,
            new.distance_meters,
            new.notes,
            len(new.shots),
            new.total_tenths(),
            new.group_id,
            now,
            [s.score_tenths for s in new.shots],
            [s.x for s in new.shots],
            [s.y for s in new.shots],
            new.user_id,
        )
        async with self.connection() as conn:
            with Committing(self._settings.db_statement_timeout):  # one statement: it commits
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
            idle = await take_idle(pool)
            if idle is not None:
                return pool, idle
            # A deadline, not acquire(timeout=): that one runs each acquire in a new task.
            self._waiting += 1
            try:
                with Deadline(self._settings.db_acquire_timeout) as waiting:
                    return pool, await pool.acquire()
            except TimeoutError:
                if waiting.expired():
                    raise PoolExhausted("no database connection free within DB_ACQUIRE_TIMEOUT") from None
                raise  # a new connection's DB_CONNECT_TIMEOUT: the server does not answer
            finally:
                self._waiting -= 1
        except (*CONNECTION_ERRORS, asyncpg.PostgresError) as exc:
            raise self._tls.explain(exc, *(where or self._where)) or ERRORS.unavailable(exc) from exc

    @asynccontextmanager
    async def _acquire(self) -> AsyncIterator[asyncpg.Connection]:
        pool, conn = await self._checkout()
        try:
            yield conn
        except WriteUnconfirmed:
            # The reply to its commit has not come back. Releasing would wait for it (or for the
            # cancel) as long as the network stalls: the connection is dropped, and the answer
            # goes out at the bound. The server finishes the commit on its own.
            conn.terminate()
            raise
        finally:
            await release(pool, conn, self._settings.db_connect_timeout)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[PostgresConnection]:
        async with self._acquire() as conn:
            yield PostgresConnection(conn, self)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PostgresConnection]:
        async with self._acquire() as conn:
            try:
                # As `async with conn.transaction()`, with the COMMIT inside `Committing`.
                tx = conn.transaction()
                await tx.start()
                try:
                    yield PostgresConnection(conn, self)
                except BaseException:
                    await tx.rollback()
                    raise
                with Committing(self._settings.db_statement_timeout):
                    await tx.commit()
            except CONNECTION_ERRORS as exc:
                raise ERRORS.unavailable(exc) from exc
