"""PostgreSQL's change watch: LISTEN on one dedicated connection per instance, outside the pool.

A trigger (migration 0003) sends `NOTIFY gateway_activity, '<id>'` for every activity inserted, by
any writer; notifications arrive when the transaction commits. The payload is the id only: the
activities are read through the pool. When the connection is lost (a restart, a failover) the watch
reconnects with backoff, then reads the activities committed meanwhile, so none is missed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Any

import asyncpg

from gateway.datasources.changes import (
    READ_BATCH,
    ActivityReader,
    Announce,
    ChangeWatch,
    DeliveredActivities,
    read_since,
    starting_point,
)
from gateway.datasources.sql.polling import GAP_WAIT
from gateway.errors import GatewayError

__all__ = ["CHANNEL", "PostgresNotifications"]

log = logging.getLogger(__name__)

CHANNEL = "gateway_activity"
_FIRST_DELAY, _MAX_DELAY = 0.1, 5.0  # seconds between reconnection attempts, doubling
_CHECK_EVERY = 10.0  # seconds of silence after which the connection is checked with a round trip
_FAILURES = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, GatewayError)


class PostgresNotifications(ChangeWatch):
    """LISTENs on a connection `connect` opens (the pool's credentials and TLS, never from the pool).

    `reader` gives up its reads (changes.BoundedReader); the LISTEN is given up after `answer_within`
    seconds. Either way the watch reconnects and reads what it missed.
    """

    def __init__(
        self,
        reader: ActivityReader,
        connect: Callable[[], Awaitable[asyncpg.Connection]],
        answer_within: float,
    ) -> None:
        super().__init__()
        self._reader = reader
        self._connect = connect
        self._answer_within = answer_within
        self.reconnections = 0  # for tests and logs

    async def run(self, announce: Announce) -> None:
        delay = _FIRST_DELAY
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await self._connect()
                heard = _Heard()
                conn.add_termination_listener(heard.lost)
                async with asyncio.timeout(self._answer_within):
                    await conn.add_listener(CHANNEL, heard.notified)
                if self.delivered is None:
                    self.delivered = await starting_point(self._reader, GAP_WAIT)
                    self.ready.set()
                else:
                    # What committed while nobody here was listening.
                    await read_since(self._reader, self.delivered, announce)
                    self.reconnections += 1
                    log.info("live updates resumed: listening on PostgreSQL again")
                self.connected, delay = True, _FIRST_DELAY
                await self._listen(conn, heard, self.delivered, announce)
                log.warning("live updates paused: the LISTEN connection was closed; reconnecting")
            except _FAILURES as exc:
                if self.connected or self.delivered is None:
                    log.warning("live updates paused: the LISTEN connection was lost (%s)", _reason(exc))
            finally:
                if conn is not None:
                    conn.terminate()
            self.connected = False
            await asyncio.sleep(delay)
            delay = min(delay * 2, _MAX_DELAY)

    async def _listen(
        self, conn: asyncpg.Connection, heard: _Heard, delivered: DeliveredActivities, announce: Announce
    ) -> None:
        """Announce what is notified until the connection is lost."""
        while not conn.is_closed():
            with suppress(TimeoutError):
                async with asyncio.timeout(_CHECK_EVERY):
                    await heard.news.wait()
            heard.news.clear()
            if heard.ids:
                ids = sorted(heard.ids)
                heard.ids.clear()
                # In batches: a bulk insert notifies tens of thousands of ids, past a statement's
                # 32,767 parameters, and each batch waits for the feed's followers to take it.
                for start in range(0, len(ids), READ_BATCH):
                    batch = ids[start : start + READ_BATCH]
                    await announce(delivered.fresh(await self._reader.activities_by_ids(batch)))
            elif not conn.is_closed():
                async with asyncio.timeout(_CHECK_EVERY):
                    await conn.fetchval("SELECT 1")  # a silent connection may be a dead one


class _Heard:
    """The ids notified on one connection and not read yet; `news` is set on a notification or a loss."""

    def __init__(self) -> None:
        self.ids: set[int] = set()
        self.news = asyncio.Event()

    def notified(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        if payload.isdigit():
            self.ids.add(int(payload))
            self.news.set()

    def lost(self, _conn: Any) -> None:
        self.news.set()


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
