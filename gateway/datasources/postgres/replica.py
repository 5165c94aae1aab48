"""The read replica: its pool while it answers, a probe that brings it back once it stopped, and
the data source query operations read from."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import asyncpg

from gateway.datasources.postgres.driver import PoolExhausted, PostgresConnection, json_row, release
from gateway.datasources.protocol import DataSourceUnavailable, SourceStats, StatementTimeout
from gateway.datasources.records import NewSession, SessionRecord
from gateway.datasources.sql.closing import close_or_terminate
from gateway.datasources.sql.rows import Row, SqlConnection
from gateway.datasources.sql.source import SqlDataSource
from gateway.deadlines import SLACK, Deadline
from gateway.errors import GatewayError, Unavailable

if TYPE_CHECKING:
    from gateway.datasources.postgres import PostgresDataSource

__all__ = ["RECHECK_SECONDS", "Replica", "ReplicaReads"]

log = logging.getLogger(__name__)
T = TypeVar("T")

# How often a replica found down is tried again; queries read from the primary meanwhile.
RECHECK_SECONDS = 2.0


class Replica:
    """DB_READ_HOST's pool, and whether queries may use it.

    Down at start-up or later, it is left out (queries read from the primary) and a background
    probe opens a connection every RECHECK_SECONDS until one answers, then it is used again.
    """

    def __init__(
        self, where: str, create_pool: Callable[[], Awaitable[asyncpg.Pool]], probe_timeout: float
    ) -> None:
        self.where = where  # host:port, for logs and /readyz
        self._create_pool = create_pool
        self._probe_timeout = probe_timeout
        self._pool: asyncpg.Pool | None = None
        self._probe: asyncio.Task[None] | None = None
        self.down: str | None = None  # why queries read from the primary instead; None while in use

    @property
    def pool(self) -> asyncpg.Pool | None:
        """The pool queries read from, or None while the replica is down."""
        return self._pool if self.down is None else None

    async def open(self) -> None:
        """Open the pool; a replica that does not answer is marked down, never a failed start."""
        try:
            self._pool = await self._create_pool()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, GatewayError) as exc:
            self.lost(exc)

    def lost(self, exc: BaseException) -> None:
        """The replica failed a connection or a statement: queries use the primary until it answers."""
        if self.down is None:
            log.warning("%s", self._reason(exc))
        self.down = self._reason(exc)
        if self._probe is None or self._probe.done():
            self._probe = asyncio.get_running_loop().create_task(self._until_back())

    async def _until_back(self) -> None:
        while True:
            await asyncio.sleep(RECHECK_SECONDS)
            try:
                async with asyncio.timeout(self._probe_timeout):
                    if self._pool is None:
                        self._pool = await self._create_pool()
                    async with self._pool.acquire() as conn:
                        await conn.fetchval("SELECT 1")
            except Exception as exc:  # whatever it was, the probe must live on to try again
                self.down = self._reason(exc)
                continue
            self.down = None
            log.info("read replica %s answers again; queries read from it", self.where)
            return

    async def close(self) -> None:
        probe, self._probe = self._probe, None
        if probe is not None:
            probe.cancel()
            await asyncio.gather(probe, return_exceptions=True)
        pool, self._pool = self._pool, None
        if pool is not None:
            await close_or_terminate(pool.close(), pool.terminate, "PostgreSQL read replica pool")

    def _reason(self, exc: BaseException) -> str:
        why = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return f"read replica {self.where} unavailable ({why}); queries read from the primary"


class ReplicaReads(SqlDataSource):
    """What query operations read from: the replica while it answers, else the primary.

    A read the replica fails because it cannot be reached runs again on the primary (a read
    changes nothing), and the replica is left out until its probe finds it answering again.
    """

    def __init__(
        self,
        primary: PostgresDataSource,
        replica: Replica,
        where: tuple[str, int],
        statement_timeout: float,
        connect_timeout: float,
    ) -> None:
        super().__init__()
        self.json_sql = primary.json_sql
        self._primary = primary
        self._replica = replica
        self._where = where
        # The replica's own statement timeout, and its reply's way back.
        self._answer_within = statement_timeout + SLACK
        self._release_wait = connect_timeout  # a cancel's new connection

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
            yield PostgresConnection(conn, self._primary)
        finally:
            await release(pool, conn, self._release_wait)

    # Writes go to the primary: the shared ones through transaction(), PostgreSQL's own directly.
    def transaction(self) -> AbstractAsyncContextManager[SqlConnection]:
        return self._primary.transaction()

    async def create_session(self, new: NewSession) -> SessionRecord:
        return await self._primary.create_session(new)

    async def _fetch(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        async def read(conn: asyncpg.Connection) -> list[Row]:
            return await PostgresConnection(conn, self._primary).fetch(sql, args)

        rows = await self._on_replica(read)
        return await self._primary._fetch(sql, args) if isinstance(rows, _Primary) else rows

    async def fetch_json(self, sql: str, args: Sequence[Any] = ()) -> tuple[bytes | None, bool]:
        async def read(conn: asyncpg.Connection) -> tuple[bytes | None, bool]:
            self._primary.statements += 1
            return await json_row(conn, sql, args, self._primary.tracing)

        row = await self._on_replica(read)
        return await self._primary.fetch_json(sql, args) if isinstance(row, _Primary) else row

    async def _on_replica(self, read: Callable[[asyncpg.Connection], Awaitable[T]]) -> T | _Primary:
        """`read` on a replica connection; _PRIMARY when the primary must answer instead: the replica
        is down, loses the connection mid-read, or does not answer at all (a frozen host, a split
        network: not even its own statement timeout comes back). A read changes nothing: running it
        again is safe. A statement the replica itself stopped for its time is a TIMEOUT, as anywhere."""
        taken = await self._take()
        if taken is None:
            return _PRIMARY
        pool, conn = taken
        try:
            with Deadline(self._answer_within) as waiting:
                return await read(conn)
        except TimeoutError:
            if not waiting.expired():
                raise
            return self._silent(conn)
        except StatementTimeout as exc:
            if isinstance(exc.__cause__, TimeoutError):  # asyncpg's own limit (DB_STATEMENT_CACHE=false)
                return self._silent(conn)
            raise
        except DataSourceUnavailable as exc:
            self._replica.lost(exc)
            return _PRIMARY
        finally:
            await release(
                pool, conn, self._primary._settings.db_connect_timeout
            )  # a terminated connection returns at once

    def _silent(self, conn: asyncpg.Connection) -> _Primary:
        # Its cancel request would wait on the same silent host: the connection is dropped instead.
        conn.terminate()
        self._replica.lost(
            DataSourceUnavailable(
                f"no answer within DB_STATEMENT_TIMEOUT ({self._answer_within - SLACK:g}s) + {SLACK:g}s"
            )
        )
        return _PRIMARY


class _Primary:
    """What `_on_replica` returns when the primary must answer."""


_PRIMARY = _Primary()
