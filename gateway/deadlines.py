"""Time limits on what every request does (REQUEST_TIMEOUT, DB_ACQUIRE_TIMEOUT), without a timer each.

`asyncio.timeout` arms a timer when its scope opens and cancels it when the scope closes; on
uvloop under load that is ~8 us a scope, and a request opens two or three, about a tenth of a
point lookup. These limits need no millisecond precision: one sweep per event loop, every
RESOLUTION seconds and only while scopes are open, cancels the tasks past their deadline, and
the scope turns that cancellation into TimeoutError exactly as `asyncio.timeout` does. A scope
therefore ends between its deadline and RESOLUTION later.
"""

from __future__ import annotations

import asyncio
from types import TracebackType

__all__ = ["RESOLUTION", "Deadline"]

RESOLUTION = 0.05  # seconds between sweeps


class _Sweeper:
    """One loop's open deadlines, and the timer that checks them while there are any. Deadline adds
    and removes its scope in `scopes` itself: it opens twice a request, and each method call here
    cost ~1k instructions of a point lookup's ~500k."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.scopes: dict[Deadline, None] = {}  # insertion-ordered set
        self.timer: asyncio.TimerHandle | None = None

    def arm(self) -> None:
        """Sweep in RESOLUTION seconds (a scope was added while no sweep was due)."""
        self.timer = self.loop.call_later(RESOLUTION, self._sweep)

    def _sweep(self) -> None:
        self.timer = None
        now = self.loop.time()
        for scope in [s for s in self.scopes if s.when <= now]:
            del self.scopes[scope]
            scope.expire()
        if self.scopes:
            self.arm()


# The sweeper of the loop that last opened a scope. A process runs one loop (tests, one after
# another); a scope keeps its own sweeper, so a loop that comes back gets a new one and the old
# one still sweeps the scopes it holds.
_current: _Sweeper | None = None


def _new_sweeper(loop: asyncio.AbstractEventLoop) -> _Sweeper:
    """A sweeper for `loop`, current from now on (the scope found none for its loop)."""
    global _current
    _current = _Sweeper(loop)
    return _current


class Deadline:
    """`with Deadline(seconds)` inside a task: the body is cancelled once `seconds` have passed,
    and the scope raises TimeoutError in its place (a cancellation from elsewhere passes through).

    A plain context manager: entering and leaving awaits nothing, so no coroutine is made for either.
    """

    __slots__ = ("_cancelling", "_expired", "_sweeper", "_task", "seconds", "when")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.when = 0.0
        self._expired = False

    def __enter__(self) -> Deadline:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task(loop)
        if task is None:
            raise RuntimeError("a deadline must be used inside a task")
        self._task = task
        self._cancelling = task.cancelling()
        self.when = loop.time() + self.seconds
        sweeper = _current if _current is not None and _current.loop is loop else _new_sweeper(loop)
        self._sweeper = sweeper
        sweeper.scopes[self] = None
        if sweeper.timer is None:
            sweeper.arm()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._sweeper.scopes.pop(self, None)
        if self._expired and self._task.uncancel() <= self._cancelling and kind is asyncio.CancelledError:
            raise TimeoutError from exc

    def expire(self) -> None:
        """The deadline has passed: cancel the task (the sweep calls this)."""
        self._expired = True
        self._task.cancel()

    def expired(self) -> bool:
        """Whether the deadline passed while the scope was open."""
        return self._expired
