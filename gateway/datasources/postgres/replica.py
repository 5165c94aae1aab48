"""The read replica: its pool while it answers, and a probe that brings it back once it stopped."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import asyncpg

from gateway.datasources.sql.closing import close_or_terminate
from gateway.errors import GatewayError

__all__ = ["RECHECK_SECONDS", "Replica"]

log = logging.getLogger(__name__)

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
