"""The MySQL / MariaDB data source: an aiomysql pool."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import aiomysql
import pymysql

from gateway.connect.credentials import CredentialProvider, Credentials, EnvCredentials, open_credentials
from gateway.connect.rotation import after_refusal
from gateway.connect.tls import (
    ClientTls,
    TlsError,
    server_without_tls,
    tls_downgrade,
)
from gateway.datasources.mysql.driver import (
    CONNECTION_ERRORS,
    ERRORS,
    NO_SUCH_THREAD,
    MysqlConnection,
    access_denied,
    json_row,
    pool_closed,
    pool_streams,
)
from gateway.datasources.mysql.handshake import GreetingWithoutTls, connect
from gateway.datasources.mysql.json_sql import MariadbJsonSql
from gateway.datasources.mysql.pool import Opener, Pool
from gateway.datasources.mysql.procedures import call_create_session, shot_records, unusable, why_unusable
from gateway.datasources.protocol import DataSourceUnavailable, SourceStats
from gateway.datasources.records import NewSession, SessionRecord
from gateway.datasources.sql.migrations import apply_migrations, load_migrations
from gateway.datasources.sql.source import SqlDataSource
from gateway.datasources.sql.writes import created_session
from gateway.deadlines import Committing, Deadline
from gateway.errors import GatewayError, WriteUnconfirmed
from gateway.settings import Settings

__all__ = ["MysqlDataSource"]

log = logging.getLogger(__name__)

_MIGRATION_LOCK = "gateway_migrations"
_MIGRATIONS_RECORDED = (
    "SELECT COUNT(*) AS present FROM information_schema.tables"
    " WHERE table_schema = DATABASE() AND table_name = 'schema_migrations'"
)

# The fast path's JSON_ARRAYAGG stops at group_concat_max_len (1 MB by default) with a warning and
# cut, invalid JSON. Raised to the largest result the server sends at all, max_allowed_packet.
_AGGREGATE_BOUND = "group_concat_max_len = @@max_allowed_packet"


def _json_sql(version: str) -> MariadbJsonSql | None:
    """MariaDB 10.5+ orders and limits inside JSON_ARRAYAGG; MySQL 8 cannot, so it stays interpreted."""
    if "mariadb" not in version.lower():
        return None
    major, minor = (int(part) for part in version.split(".")[:2])
    return MariadbJsonSql() if (major, minor) >= (10, 5) else None


class MysqlDataSource(SqlDataSource):
    """MySQL or MariaDB through an aiomysql pool sized and timed by the DB_POOL_* settings.

    Each new connection logs in with the current credentials (with a fresh IAM token when
    DB_IAM_AUTH is on) through a TLS-first handshake. A password refused means a new pool with
    the credentials read again; the old one closes as its queries finish.
    """

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self._settings = settings
        self._pool: Pool | None = None
        self._tls = ClientTls(settings)
        self._credentials: CredentialProvider = EnvCredentials(settings)
        self._pool_credentials: Credentials | None = None
        self._where = (settings.db_host, settings.database_port)
        self._renew_lock = asyncio.Lock()
        # Closing pools (of rotated credentials) by the task that waits for their connections.
        self._retiring: dict[asyncio.Task[None], tuple[aiomysql.Pool, list[asyncio.StreamWriter]]] = {}
        self._encrypted_before = False
        # Where the last new connection met a greeting without TLS, until one is encrypted again.
        self._downgraded: tuple[str, int] | None = None
        self.auth_retries = 0
        # KILL QUERY tasks for the statements of cancelled requests.
        self._stopping: set[asyncio.Task[None]] = set()
        self._waiting = 0
        # Whether writes call the stored procedures; off once the server says they cannot be called.
        self._procedures = True

    def stats(self) -> SourceStats:
        pool = self._pool
        reads = self._credentials.reads()
        if pool is None:
            return SourceStats(secret_reads=reads)
        return SourceStats(pool.size, pool.size - pool.freesize, self._waiting, pool.maxsize, reads)

    async def _open(self) -> None:
        s = self._settings
        self._tls.context()  # a CA or client certificate that cannot be used stops the start here
        self._credentials = await open_credentials(s)
        first = await self._credentials.current()
        self._where = (first.host, first.port)
        try:
            try:
                self._pool = await self._create_pool(first)
                self._pool_credentials = first
            except pymysql.err.OperationalError as exc:
                if not access_denied(exc):
                    raise
                self._pool, self._pool_credentials = await self._pool_after_refusal(first, exc)
        except (pymysql.err.MySQLError, *CONNECTION_ERRORS) as exc:
            tls_failure = self._tls.explain(exc, *self._where)
            if tls_failure is not None:
                raise tls_failure from exc
            detail = exc.args[1] if len(exc.args) > 1 else type(exc).__name__
            raise DataSourceUnavailable(
                f"cannot connect to MySQL at {self._where[0]}:{self._where[1]} as {first.user} ({detail})"
            ) from exc
        migrating = f"apply migrations to MySQL database {first.database} as user {first.user}"
        with ERRORS.refusing_start(migrating):
            async with self.connection() as conn:
                rows = await conn.fetch("SELECT GET_LOCK(?, 60) AS locked", (_MIGRATION_LOCK,))
                if not rows or rows[0]["locked"] != 1:
                    raise DataSourceUnavailable("timed out waiting for another process's migrations")
                # IF NOT EXISTS raises a note on existing tables, which the driver turns into warnings.
                await conn.execute("SET SESSION sql_notes = 0")
                try:
                    await apply_migrations(conn, load_migrations(__name__), _MIGRATIONS_RECORDED)
                finally:
                    await conn.execute("SET SESSION sql_notes = 1")
                    await conn.fetch("SELECT RELEASE_LOCK(?) AS released", (_MIGRATION_LOCK,))
                self.json_sql = _json_sql((await conn.fetch("SELECT VERSION() AS v"))[0]["v"])

    def _opener(self, credentials: Credentials) -> Opener:
        """How the pool for `credentials` opens each new connection; the pool in use follows the
        secret once it is read again (DB_SECRET_TTL), as PostgreSQL's connections do."""
        s = self._settings

        async def open_one() -> aiomysql.Connection:
            nonlocal credentials
            if credentials == self._pool_credentials:
                # The secret may have moved to credentials the database accepts alongside the old
                # ones (another user, in an alternating-users rotation): no refusal would tell.
                current = await self._credentials.current()
                if current != credentials:
                    credentials = self._pool_credentials = current
            login = await self._credentials.login(credentials)
            self._where = (login.host, login.port)
            context = self._tls.context()  # the CA file as it is on disk now
            try:
                conn = await connect(
                    login,
                    context,
                    s.db_connect_timeout,
                    autocommit=True,
                    charset="utf8mb4",
                    # MariaDB alone runs the /*M! … */ part: its statement timeout (MySQL 8 would refuse
                    # max_statement_time; there set max_execution_time on the server).
                    init_command=(
                        f"SET time_zone = '+00:00', {_AGGREGATE_BOUND}"
                        f" /*M!100108 , max_statement_time = {s.db_statement_timeout:g} */"
                    ),
                )
            except GreetingWithoutTls as exc:
                raise self._without_tls(exc.host, exc.port) from None
            if context is not None:
                self._encrypted_before, self._downgraded = True, None
            return conn

        return open_one

    def _without_tls(self, host: str, port: int) -> TlsError:
        """A greeting without TLS: the server's setting at start, a downgrade once TLS has been seen."""
        if not self._encrypted_before:
            return server_without_tls(host, port)
        self._downgraded = (host, port)
        log.error("TLS downgrade: a new connection to %s:%s was not offered TLS; none was sent", host, port)
        return tls_downgrade(host, port)

    async def _create_pool(self, credentials: Credentials) -> Pool:
        """A pool for `credentials`, filled to DB_POOL_MIN and with one connection opened at least."""
        s = self._settings
        pool = Pool(self._opener(credentials), s.db_pool_min, s.db_pool_max, s.db_idle_timeout)
        try:
            async with asyncio.timeout(s.db_connect_timeout * max(1, s.db_pool_min)):
                # Fills the pool up to its minimum first, and proves the credentials even with none.
                pool.release(await pool.acquire())
        except BaseException:
            self._retire(pool)  # the connections it made close now; close() waits for them
            raise
        return pool

    async def _pool_after_refusal(
        self, refused: Credentials, refusal: pymysql.err.OperationalError
    ) -> tuple[Pool, Credentials]:
        """A pool with the credentials the provider offers after `refused` (read again, AWSPENDING...)."""

        async def attempt(credentials: Credentials) -> tuple[Pool, Credentials]:
            return await self._create_pool(credentials), credentials

        pool, credentials = await after_refusal(
            self._credentials, refused, refusal, attempt, access_denied, self._settings.db_connect_timeout
        )
        self.auth_retries += 1
        log.info("MySQL refused the password; new pool with the credentials read again")
        return pool, credentials

    async def _renewed_pool(self, failed: Pool, refusal: pymysql.err.OperationalError) -> Pool:
        """After a refused password: a pool with other credentials; the old one closes once its queries end.

        aiomysql's pool keeps the credentials it was made with, so rotation means a new pool.
        """
        async with self._renew_lock:
            if self._pool is not failed and self._pool is not None:
                return self._pool  # another request renewed it meanwhile
            before = self._pool_credentials
            if before is None:
                raise refusal
            self._pool, self._pool_credentials = await self._pool_after_refusal(before, refusal)
            self._retire(failed)
            return self._pool

    def _retire(self, pool: aiomysql.Pool) -> None:
        """Close `pool`: each connection closes when its query ends and releases it."""
        streams = pool_streams(pool)
        pool.close()
        task = asyncio.create_task(pool.wait_closed())
        self._retiring[task] = (pool, streams)
        task.add_done_callback(self._forget_retired)

    def _forget_retired(self, task: asyncio.Task[None]) -> None:
        self._retiring.pop(task, None)

    async def close(self) -> None:
        await asyncio.gather(*self._stopping)
        pool, self._pool = self._pool, None
        if pool is not None:
            self._retire(pool)
        await asyncio.gather(
            *(pool_closed(task, *retiring) for task, retiring in list(self._retiring.items()))
        )

    async def ping(self) -> None:
        if self._downgraded is not None and self._pool_credentials is not None:
            # A free pooled connection would answer: prove a new one can be opened safely instead.
            try:
                conn = await self._opener(self._pool_credentials)()
                await conn.ensure_closed()
            except (pymysql.err.MySQLError, *CONNECTION_ERRORS) as exc:
                raise self._tls.explain(exc, *self._where) or ERRORS.unavailable(exc) from exc
        await super().ping()

    async def create_session(self, new: NewSession) -> SessionRecord:
        """One CALL of gateway_create_session instead of five round trips; the statements one by
        one where the procedure cannot be called (a user without EXECUTE on it, say)."""
        # A shot no column holds (no record) goes to the statements, which fail on it as they say.
        records = shot_records(new.shots) if self._procedures else None
        if records is None:
            return await super().create_session(new)
        try:
            async with self.connection() as conn:
                with Committing(self._settings.db_statement_timeout):  # the procedure commits
                    session_id = await call_create_session(conn, new, records, datetime.now(UTC))
                if session_id is None:
                    await self._not_created(conn, new)
        except pymysql.err.OperationalError as exc:
            if not unusable(exc):
                raise
            if self._procedures and self._pool_credentials is not None:
                log.warning(
                    "%s; until the gateway restarts, sessions are written statement by statement",
                    why_unusable(exc, self._pool_credentials),
                )
            self._procedures = False
            return await super().create_session(new)
        self._committed()
        return created_session(session_id, new)

    async def fetch_json(self, sql: str, args: Sequence[Any] = ()) -> tuple[bytes | None, bool]:
        # The fast path's one statement per request: no context manager (a generator-based one
        # costs a point lookup ~3% of its throughput), no row dicts.
        pool, conn = await self._checkout()
        try:
            self.statements += 1
            return await json_row(conn, sql, args, self.tracing)
        except asyncio.CancelledError:
            self._stop_if_cut(conn)
            raise
        finally:
            pool.release(conn)

    async def _checkout(self) -> tuple[Pool, aiomysql.Connection]:
        """A connection, and the pool to release it to: a new pool's when the password was rotated."""
        pool = self._pool
        if pool is None:
            raise DataSourceUnavailable("pool is closed")
        idle = pool.take_idle()
        if idle is not None:
            return pool, idle
        try:
            try:
                return pool, await self._acquire_from(pool)
            except pymysql.err.OperationalError as exc:
                if not access_denied(exc):
                    raise
                pool = await self._renewed_pool(pool, exc)
                return pool, await self._acquire_from(pool)
        except (pymysql.err.MySQLError, *CONNECTION_ERRORS) as exc:
            raise self._tls.explain(exc, *self._where) or ERRORS.unavailable(exc) from exc

    async def _acquire_from(self, pool: aiomysql.Pool) -> aiomysql.Connection:
        # Bounded even when a connection is free now: this request may wait for the pool's lock
        # (another one opening a connection holds it) and find it taken when its turn comes.
        waiting = 0 if pool.freesize else 1
        self._waiting += waiting
        try:
            # aiomysql's acquire() has no timeout of its own: a saturated pool would hang.
            with Deadline(self._settings.db_acquire_timeout) as deadline:
                return await pool.acquire()
        except TimeoutError:
            if not deadline.expired():
                raise  # a new connection's DB_CONNECT_TIMEOUT: the server does not answer
            raise DataSourceUnavailable("no database connection free within DB_ACQUIRE_TIMEOUT") from None
        finally:
            self._waiting -= waiting

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[MysqlConnection]:
        pool, conn = await self._checkout()
        try:
            yield MysqlConnection(conn, self)
        except (asyncio.CancelledError, WriteUnconfirmed):
            self._stop_if_cut(conn)
            raise
        finally:
            pool.release(conn)

    def _stop_if_cut(self, conn: aiomysql.Connection) -> None:
        """KILL QUERY, from another connection, the statement a cancelled request left on `conn`."""
        # aiomysql closes a connection cancelled mid-statement, but the server runs the
        # statement to its end unless told: it notices a gone client only while it waits.
        if not conn.closed:
            return
        task = asyncio.create_task(self._kill_query(conn.thread_id()))
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    async def _kill_query(self, thread_id: int) -> None:
        try:
            async with self.connection() as conn:
                await conn.execute("KILL QUERY ?", (thread_id,))
        except (GatewayError, pymysql.err.MySQLError, *CONNECTION_ERRORS) as exc:
            if exc.args and exc.args[0] == NO_SUCH_THREAD:
                return  # the statement ended meanwhile
            log.warning("could not stop the statement of a cancelled request (thread %d): %s", thread_id, exc)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[MysqlConnection]:
        async with self.connection() as wrapped:
            conn = wrapped.driver
            await conn.begin()
            try:
                yield wrapped
            except BaseException:
                if not conn.closed:
                    try:
                        await conn.rollback()
                    except (pymysql.err.MySQLError, *CONNECTION_ERRORS):
                        conn.close()
                raise
            try:
                with Committing(self._settings.db_statement_timeout):
                    await conn.commit()
            except (pymysql.err.MySQLError, *CONNECTION_ERRORS) as exc:
                conn.close()
                raise ERRORS.unavailable(exc) from exc
