"""Subscriptions that would compute the same updates share one execution.

Two subscribers with the same document, operation, variables, viewer and policy marks receive the
same data, so one Strawberry subscription runs for all of them and each update is resolved once;
every subscriber has its own bounded queue of results. A subscriber whose queue overflows is
dropped and its `on_slow` called (the door closes its connection); the others are not held back.
`SharedExecutions` holds an executor's running executions by what they compute.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Hashable
from contextlib import aclosing, suppress
from typing import TYPE_CHECKING

from strawberry.types import ExecutionResult

from gateway.schema.context import RequestContext

if TYPE_CHECKING:
    from gateway.telemetry.metrics import Metrics

__all__ = ["EXECUTION_BUFFER", "SharedExecutions", "SharedSubscription", "Subscriber"]

_END = None  # queued after the last result
EXECUTION_BUFFER = 1000  # activities one shared execution may have waiting to be resolved


class Subscriber:
    """One client's subscription to a shared execution: the results since it joined, in order."""

    __slots__ = ("_buffer", "_on_slow", "_queue", "dropped")

    def __init__(self, buffer: int, on_slow: Callable[[], None] | None) -> None:
        # One more place than the buffer, for the end marker.
        self._queue: asyncio.Queue[ExecutionResult | None] = asyncio.Queue(buffer + 1)
        self._buffer = buffer
        self._on_slow = on_slow
        self.dropped = False

    def offer(self, result: ExecutionResult | None) -> bool:
        """Queue `result` (None: the end); False when the subscriber is too far behind and is dropped."""
        if self.dropped:
            return False
        if result is not None and self._queue.qsize() >= self._buffer:
            self.drop()
            return False
        self._queue.put_nowait(result)
        return True

    def drop(self) -> None:
        """Give up on this subscriber: it gets no more results, and its connection is closed."""
        if self.dropped:
            return
        self.dropped = True
        if self._on_slow is not None:
            self._on_slow()
        with suppress(asyncio.QueueFull):  # the end may be queued already
            self._queue.put_nowait(_END)

    @property
    def idle(self) -> bool:
        """Whether every result queued for it was taken (sent, or being sent)."""
        return self._queue.empty()

    async def results(self) -> AsyncIterator[ExecutionResult]:
        """Its results until the execution ends. Once dropped it yields nothing more and does not end
        either: its connection is closing, which cancels it (an end would be announced as `complete`)."""
        while (result := await self._queue.get()) is not None:
            yield result
        if self.dropped and self._on_slow is not None:
            await asyncio.get_running_loop().create_future()


class SharedSubscription:
    """One running subscription and the subscribers it serves; it ends when the last one leaves."""

    def __init__(
        self,
        key: Hashable,
        context: RequestContext,
        results: AsyncIterator[ExecutionResult],
        on_end: Callable[[SharedSubscription], None],
    ) -> None:
        self.key = key
        self.context = context
        self.subscribers: set[Subscriber] = set()
        self._on_end = on_end
        self._task = asyncio.create_task(self._pump(results), name="shared subscription")

    @property
    def receiving(self) -> int:
        """Its subscribers, once its execution follows the feed (later activities reach them)."""
        return len(self.subscribers) if self.context.following else 0

    @property
    def drained(self) -> bool:
        return all(subscriber.idle for subscriber in self.subscribers)

    def join(self, buffer: int, on_slow: Callable[[], None] | None) -> Subscriber:
        subscriber = Subscriber(buffer, on_slow)
        self.subscribers.add(subscriber)
        return subscriber

    async def leave(self, subscriber: Subscriber) -> None:
        self.subscribers.discard(subscriber)
        if not self.subscribers:
            self._on_end(self)
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task

    def drop_all(self) -> None:
        """The shared execution itself fell behind the feed: every subscriber is too slow."""
        for subscriber in list(self.subscribers):
            subscriber.drop()

    async def _pump(self, results: AsyncIterator[ExecutionResult]) -> None:
        try:
            async with aclosing(results):  # type: ignore[type-var]
                async for result in results:
                    for subscriber in list(self.subscribers):
                        if not subscriber.offer(result):
                            self.subscribers.discard(subscriber)
                    # A burst resolves without suspending (its records are queued already): let the
                    # subscribers' senders run, so a client that keeps up is not taken for a slow one.
                    await asyncio.sleep(0)
        finally:
            self._on_end(self)
            for subscriber in self.subscribers:
                subscriber.offer(_END)


class SharedExecutions:
    """One executor's running subscription executions, by what they compute, and the subscriptions
    on them (counted, and exported as gauges when metrics are on)."""

    def __init__(self, metrics: Metrics | None) -> None:
        self.subscriptions = 0  # subscriptions running now
        self._running: dict[Hashable, SharedSubscription] = {}
        self._open = None
        self._executions = None
        if metrics is not None:
            self._open = metrics.gauge(
                "gateway_subscriptions", "Subscriptions open (sockets and event streams)"
            )
            self._executions = metrics.gauge(
                "gateway_subscription_executions",
                "Subscription executions running; subscriptions receiving the same data share one",
            )

    async def results(
        self,
        key: Hashable,
        context: RequestContext,
        start: Callable[[], Awaitable[AsyncIterator[ExecutionResult]]],
        buffer: int,
        on_slow: Callable[[], None] | None,
    ) -> AsyncGenerator[ExecutionResult, None]:
        """One subscription's results: from the running execution of `key`, or from one that
        `start` begins for `context`; at most `buffer` of them waiting for this subscriber."""
        # Counted before anything is awaited, so subscriptions arriving together cannot all pass
        # a limit the caller checked just before.
        self.subscriptions += 1
        if self._open is not None:
            self._open.inc()
        try:
            shared = self._running.get(key)
            if shared is None:
                results = await start()
                shared = self._running[key] = SharedSubscription(key, context, results, self._forget)
                if self._executions is not None:
                    self._executions.inc()
                # The feed's buffer for the execution. A burst past it waits for room; none for
                # ROOM_WAIT seconds means resolving updates is stuck (an overloaded server, a
                # database that does not answer), whoever reads them: every subscriber is dropped.
                context.on_slow, context.feed_buffer = shared.drop_all, EXECUTION_BUFFER
            subscriber = shared.join(buffer, on_slow)
            try:
                async for result in subscriber.results():
                    yield result
            finally:
                await shared.leave(subscriber)
        finally:
            self.subscriptions -= 1
            if self._open is not None:
                self._open.dec()

    def receiving(self) -> int:
        """How many subscriptions receive every activity committed from now on."""
        return sum(shared.receiving for shared in self._running.values())

    def drained(self) -> bool:
        """Whether every update an execution produced was sent (or is being sent) to its subscribers."""
        return all(shared.drained for shared in self._running.values())

    def _forget(self, shared: SharedSubscription) -> None:
        if self._running.get(shared.key) is shared:
            del self._running[shared.key]
            if self._executions is not None:
                self._executions.dec()
