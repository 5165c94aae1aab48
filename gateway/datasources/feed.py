"""This instance's live activity feed: one change watch upstream, any number of local followers.

The watch (LISTEN, a poller, or local commits) reads each new activity once through the data source;
the feed hands the record to every follower. A follower's buffer is bounded. A burst larger than it
(a bulk insert, the backlog after an outage) holds the watch back until the follower has room: the
activities are in the database, so waiting costs no memory. A follower with no room for ROOM_WAIT
seconds is dropped and its `on_overflow` called: its subscriptions end with a slow-consumer close.
Followers are executions, which never wait for a client (a slow client is dropped by its own
buffer, execution/shared.py), so one waits only while the gateway resolves updates.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager, suppress

from gateway.datasources.changes import ChangeWatch
from gateway.datasources.records import ActivityRecord
from gateway.errors import ErrorCode, GatewayError

__all__ = ["ROOM_WAIT", "ActivityFeed", "Follower", "SlowConsumer"]

log = logging.getLogger(__name__)

ROOM_WAIT = 10.0  # seconds the watch waits for room in a follower's buffer before dropping it

_READY_WAIT = 5.0  # seconds a first subscription waits for the watch to know where it starts


class SlowConsumer(GatewayError):
    """A follower fell further behind than its buffer allows."""

    code = ErrorCode.SLOW_CONSUMER

    def __init__(self, buffer: int) -> None:
        super().__init__(
            f"more than SUBSCRIPTION_BUFFER={buffer} updates waited for this client: it was disconnected"
        )


class Follower:
    """One subscription's view of the feed: the activities committed since it began, in order."""

    __slots__ = ("_buffer", "_on_overflow", "_queue", "overflowed", "sending")

    def __init__(self, buffer: int, on_overflow: Callable[[], None] | None) -> None:
        self._queue: asyncio.Queue[ActivityRecord] = asyncio.Queue(buffer)
        self._buffer = buffer
        self._on_overflow = on_overflow
        self.overflowed = False
        self.sending = False  # an update was taken and is being resolved and sent

    @property
    def idle(self) -> bool:
        """Whether everything this follower took was sent, and nothing waits."""
        return not self.sending and self._queue.empty()

    def offer(self, records: Sequence[ActivityRecord]) -> Sequence[ActivityRecord]:
        """Queue what fits now; the records that do not (give them to `wait_for_room`)."""
        if self.overflowed:
            return ()
        for position, record in enumerate(records):
            try:
                self._queue.put_nowait(record)
            except asyncio.QueueFull:
                return records[position:]
        return ()

    async def wait_for_room(self, records: Sequence[ActivityRecord], wait: float = ROOM_WAIT) -> None:
        """Queue `records` as room appears; with no room for `wait` seconds, give up on this follower."""
        for record in records:
            try:
                async with asyncio.timeout(wait):
                    await self._queue.put(record)
            except TimeoutError:
                self.overflowed = True
                if self._on_overflow is not None:
                    self._on_overflow()
                return

    async def records(self) -> AsyncIterator[ActivityRecord]:
        """Each activity as it arrives; raises SlowConsumer once the buffer overflowed."""
        while True:
            if self.overflowed and self._queue.empty():
                raise SlowConsumer(self._buffer)
            record = await self._queue.get()
            self.sending = True
            # Resumed when the subscriber asks for the next update: this one was sent.
            yield record
            self.sending = False


class ActivityFeed:
    """Runs the change watch while open and hands every activity to each follower."""

    def __init__(self, watch: ChangeWatch, buffer: int) -> None:
        self.watch = watch
        self._buffer = buffer
        self._followers: set[Follower] = set()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def followers(self) -> int:
        """How many subscriptions follow the feed now."""
        return len(self._followers)

    def drained(self) -> bool:
        """Whether every follower has sent all it took from the feed."""
        return all(follower.idle for follower in self._followers)

    async def _started(self) -> None:
        """The watch runs from the first subscription on (nothing to read before), until `close()`."""
        if self._task is None and not self._closed:
            self._task = asyncio.create_task(self.watch.run(self._announce), name="live-updates watch")
            self._task.add_done_callback(_report_end)
        # Until it knows where it starts, a commit could fall before it: wait, but not forever (an outage).
        with suppress(TimeoutError):
            async with asyncio.timeout(_READY_WAIT):
                await self.watch.ready.wait()

    async def close(self) -> None:
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task

    @asynccontextmanager
    async def follow(
        self, on_overflow: Callable[[], None] | None = None, buffer: int | None = None
    ) -> AsyncIterator[Follower]:
        """A follower for the duration of the block, once the watch runs; `on_overflow` is called if it
        falls more than `buffer` activities behind (default SUBSCRIPTION_BUFFER)."""
        follower = Follower(buffer or self._buffer, on_overflow)
        self._followers.add(follower)
        try:
            await self._started()
            yield follower
        finally:
            self._followers.discard(follower)

    @property
    def last_id(self) -> int:
        """The newest activity announced, or known to precede the watch's start."""
        return self.watch.delivered.last_id if self.watch.delivered is not None else 0

    async def _announce(self, records: Sequence[ActivityRecord]) -> None:
        behind = []
        for follower in list(self._followers):
            rest = follower.offer(records)
            if rest:
                behind.append(follower.wait_for_room(rest))
        if behind:
            await asyncio.gather(*behind)


def _report_end(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("live updates stopped: the change watch failed", exc_info=task.exception())
