"""aiomysql's pool, opening each new connection through a function of ours.

aiomysql's Pool calls its module's `connect()` with the keyword arguments it was made with, so
every connection would share one password and aiomysql's plaintext fallback. Here each new
connection comes from `opener`: a TLS-first handshake (gateway/datasources/mysql/handshake.py)
with credentials asked for at that moment (a fresh IAM token each time).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import aiomysql

__all__ = ["Opener", "Pool"]

Opener = Callable[[], Awaitable[aiomysql.Connection]]


class Pool(aiomysql.Pool):  # type: ignore[misc]
    """An aiomysql pool whose connections come from `opener`; otherwise aiomysql's own behaviour."""

    def __init__(self, opener: Opener, minsize: int, maxsize: int, recycle: float) -> None:
        super().__init__(
            minsize=minsize,
            maxsize=maxsize,
            echo=False,
            # aiomysql recycles a connection unused for this long: the idle timeout.
            pool_recycle=recycle,
            loop=asyncio.get_running_loop(),
        )
        self._opener = opener

    def take_idle(self) -> aiomysql.Connection | None:
        """A free connection taken at once, as `acquire()` would take it, when nothing else is
        acquiring (no one waits, none is being opened, the pool holds its minimum); else None:
        `acquire()` then waits its turn. No coroutine, no condition lock: a point lookup's ~2%."""
        if self._closing or self._cond.locked():
            return None
        self._drop_stale()
        if not self._free or self.size < self.minsize:
            return None  # acquire() opens connections up to the minimum first
        conn = self._free.popleft()
        self._used.add(conn)
        return conn

    def release(self, conn: aiomysql.Connection) -> asyncio.Future[None]:
        # aiomysql's release() wakes an acquire() waiting for a connection only when it keeps the
        # one released: one closed (the server ended it, a statement was cut, a transaction was left
        # open) frees a place too, but its waiters slept until DB_ACQUIRE_TIMEOUT. And it starts that
        # wake-up task on every release, with none waiting too (~5% of a point lookup).
        if conn in self._terminated or conn not in self._used:
            return super().release(conn)  # type: ignore[no-any-return]
        self._used.remove(conn)
        if not conn.closed and (conn.get_transaction_status() or self._closing):
            conn.close()
        elif not conn.closed:
            self._free.append(conn)
        if getattr(self._cond, "_waiters", True):
            return self._loop.create_task(self._wakeup())  # type: ignore[no-any-return]
        done: asyncio.Future[None] = self._loop.create_future()
        done.set_result(None)
        return done

    def _drop_stale(self) -> None:
        """Close the free connections that are closed, timed out (MySQL 8 sends an error packet
        first: eof_received) or idle too long (aiomysql's check, on each acquire)."""
        free_size = len(self._free)
        n = 0
        while n < free_size:
            conn = self._free[-1]
            reader = conn._reader
            idle = self._recycle > -1 and self._loop.time() - conn.last_usage > self._recycle
            if reader.at_eof() or reader.exception() or reader.eof_received or idle:
                self._free.pop()
                conn.close()
            else:
                self._free.rotate()
            n += 1

    async def _fill_free_pool(self, override_min: bool) -> None:
        # aiomysql 0.2-0.3's _fill_free_pool, with `self._opener()` in place of `connect(**kwargs)`.
        self._drop_stale()
        while self.size < self.minsize:
            await self._open_one()
        if self._free:
            return
        if override_min and (not self.maxsize or self.size < self.maxsize):
            await self._open_one()

    async def _open_one(self) -> None:
        self._acquiring += 1
        try:
            conn = await self._opener()
            self._free.append(conn)
            self._cond.notify()
        finally:
            self._acquiring -= 1
