"""How one gateway instance learns which activities were committed, by itself or any other instance.

Every write records an activity in the same transaction, so the activity table is the one stream of
changes. A backend's `ChangeWatch` announces each new activity once (PostgreSQL: LISTEN/NOTIFY;
MySQL/MariaDB and SQLite: reading the table after the last id seen), and waits out database outages.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Protocol, TypeVar

from gateway.datasources.records import ActivityRecord
from gateway.errors import Unavailable

__all__ = [
    "READ_BATCH",
    "ActivityReader",
    "Announce",
    "BoundedReader",
    "ChangeWatch",
    "DeliveredActivities",
    "read_since",
    "starting_point",
]

T = TypeVar("T")
Announce = Callable[[Sequence[ActivityRecord]], Awaitable[None]]

READ_BATCH = 500  # activities read per statement when catching up
_MAX_GAPS = 1000  # ids below the newest seen but not yet seen; beyond this, the oldest are given up


class ActivityReader(Protocol):
    """What a watch reads through the data source."""

    async def activities_by_ids(self, ids: Sequence[int]) -> list[ActivityRecord]: ...
    async def activities_after(self, after_id: int, limit: int) -> list[ActivityRecord]: ...
    async def last_activity_id(self) -> int: ...


class BoundedReader:
    """A reader whose reads are each given up after `seconds`. A watch reads outside any request, so
    no REQUEST_TIMEOUT bounds it, and a host gone silent mid-read (frozen, a failover that left the
    old connections open) sends not even its statement timeout: the watch waited forever, and no
    update reached this instance again. Given up, a read fails as in an outage: Unavailable."""

    def __init__(self, reader: ActivityReader, seconds: float) -> None:
        self._reader = reader
        self._seconds = seconds

    async def activities_by_ids(self, ids: Sequence[int]) -> list[ActivityRecord]:
        return await self._within(self._reader.activities_by_ids(ids))

    async def activities_after(self, after_id: int, limit: int) -> list[ActivityRecord]:
        return await self._within(self._reader.activities_after(after_id, limit))

    async def last_activity_id(self) -> int:
        return await self._within(self._reader.last_activity_id())

    async def _within(self, read: Awaitable[T]) -> T:
        try:
            async with asyncio.timeout(self._seconds):
                return await read
        except TimeoutError:
            raise Unavailable(f"the database did not answer a read within {self._seconds:g}s") from None


class ChangeWatch(ABC):
    """One per instance: announces every activity committed after it started, each once."""

    def __init__(self) -> None:
        self.connected = False  # whether it hears of new activities now
        self.delivered: DeliveredActivities | None = None  # set once it knows where it starts
        self.ready = asyncio.Event()  # set then: an activity committed later is announced

    @abstractmethod
    async def run(self, announce: Announce) -> None:
        """Call `announce` with new activities, oldest first, until cancelled; never raises for an outage."""

    def wake(self) -> None:  # noqa: B027 (most watches hear of every commit anyway)
        """An activity was committed by this process: look now rather than at the next interval."""


class DeliveredActivities:
    """Which activity ids were announced, so each is announced once even when ids commit out of order.

    Ids are taken in insert order but become visible in commit order: when id 11 is seen before 10,
    10 is remembered as a gap and read again until it appears or `gap_wait` seconds pass (a rolled
    back insert leaves a gap forever). `missing`: ids at or below `last_id` awaited the same way from
    the start. Reads start after `read_after`.
    """

    def __init__(
        self,
        last_id: int,
        gap_wait: float,
        missing: Iterable[int] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.last_id = last_id
        self._clock = clock
        now = clock()
        self._gaps: dict[int, float] = dict.fromkeys(missing, now)  # id -> when it was first missed
        self._gap_wait = gap_wait

    @property
    def read_after(self) -> int:
        """The id to read after: before the oldest gap still awaited, else the newest seen."""
        self._expire()
        return min(self._gaps) - 1 if self._gaps else self.last_id

    def fresh(self, records: Sequence[ActivityRecord]) -> list[ActivityRecord]:
        """The records not announced before, oldest first; they count as announced from now on."""
        now = self._clock()
        new: list[ActivityRecord] = []
        for record in sorted(records, key=lambda r: r.id):
            if record.id > self.last_id:
                for missing in range(max(self.last_id + 1, record.id - _MAX_GAPS), record.id):
                    self._gaps[missing] = now
                self.last_id = record.id
                new.append(record)
            elif self._gaps.pop(record.id, None) is not None:
                new.append(record)
        if len(self._gaps) > _MAX_GAPS:
            for stale in sorted(self._gaps)[: len(self._gaps) - _MAX_GAPS]:
                del self._gaps[stale]
        return new

    def _expire(self) -> None:
        if self._gaps:
            oldest = self._clock() - self._gap_wait
            for gap in [gap for gap, since in self._gaps.items() if since < oldest]:
                del self._gaps[gap]


async def starting_point(reader: ActivityReader, gap_wait: float) -> DeliveredActivities:
    """Where a new watch starts: after the newest activity visible now, awaiting as gaps the ids up
    to _MAX_GAPS below it that are not visible. A transaction may have taken one of them before
    a later one committed; it commits after the watch started, and must be announced then."""
    last_id = await reader.last_activity_id()
    floor = max(0, last_id - _MAX_GAPS)
    # At most _MAX_GAPS ids lie in (floor, last_id], so these rows hold every one visible there.
    visible = {record.id for record in await reader.activities_after(floor, _MAX_GAPS)}
    missing = [i for i in range(floor + 1, last_id + 1) if i not in visible]
    return DeliveredActivities(last_id, gap_wait, missing)


async def read_since(reader: ActivityReader, delivered: DeliveredActivities, announce: Announce) -> None:
    """Announce every activity after `delivered.read_after` not announced yet, in batches."""
    after = delivered.read_after
    while True:
        batch = await reader.activities_after(after, READ_BATCH)
        fresh = delivered.fresh(batch)
        if fresh:
            await announce(fresh)
        if len(batch) < READ_BATCH:
            return
        after = batch[-1].id
