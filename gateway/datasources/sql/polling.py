"""The change watch of backends without notifications (MySQL/MariaDB, SQLite): read the activity table.

One poller per instance reads `activities` after the last id it saw, every LIVE_POLL_INTERVAL seconds
and at once after this process commits a write. Each read is one indexed range scan on the primary
key through the pool; when nothing happened it returns no row.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress

from gateway.datasources.changes import ActivityReader, Announce, ChangeWatch, read_since, starting_point
from gateway.errors import GatewayError

__all__ = ["ActivityPoller"]

log = logging.getLogger(__name__)

# How long an id seen missing is read again: longer than any write transaction may last.
GAP_WAIT = 60.0


class ActivityPoller(ChangeWatch):
    """Reads new activities every `interval` seconds, or when woken by a local commit."""

    def __init__(self, reader: ActivityReader, interval: float) -> None:
        super().__init__()
        self._reader = reader
        self._interval = interval
        self._woken = asyncio.Event()

    def wake(self) -> None:
        self._woken.set()

    async def run(self, announce: Announce) -> None:
        while True:
            self._woken.clear()
            try:
                if self.delivered is None:
                    self.delivered = await starting_point(self._reader, GAP_WAIT)
                    self.ready.set()
                await read_since(self._reader, self.delivered, announce)
            except GatewayError as exc:
                if self.connected or self.delivered is None:
                    log.warning("live updates paused, the database is unavailable (%s); retrying", exc)
                self.connected = False
            else:
                if not self.connected:
                    log.info("live updates: reading new activities every %gs", self._interval)
                self.connected = True
            with suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await self._woken.wait()
