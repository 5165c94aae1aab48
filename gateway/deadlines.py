"""Time limits on what every request does (REQUEST_TIMEOUT, DB_ACQUIRE_TIMEOUT), without a timer each.

`asyncio.timeout` arms a timer when its scope opens and cancels it when the scope closes; on
uvloop under load that is ~8 us a scope, and a request opens two or three, about a tenth of a
point lookup. These limits need no millisecond precision: one sweep per event loop, every
RESOLUTION seconds and only while scopes are open, cancels the tasks past their deadline, and
the scope turns that cancellation into TimeoutError exactly as `asyncio.timeout` does. A scope
therefore ends between its deadline and RESOLUTION later.

A statement that commits a write runs inside `Committing`: cut there, the client could not be told
whether the write landed (the database may commit before the cancellation reaches it). The limits
wait for it instead, up to the database's own limit on the statement and SLACK more, and lift once
it has committed: the write's answer goes out, however late.
"""

from __future__ import annotations

import asyncio
from types import TracebackType

from gateway.errors import WriteUnconfirmed

__all__ = ["RESOLUTION", "SLACK", "Committing", "Deadline"]

RESOLUTION = 0.05  # seconds between sweeps
SLACK = 1.0  # seconds a commit may run past the database's own time limit: its reply's way back

# The tasks inside `Committing`, each with its innermost window.
_committing: dict[asyncio.Task[object], Committing] = {}


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
            if scope not in self.scopes:
                continue  # lifted with an earlier scope of its task
            window = _committing.get(scope._task)
            if window is not None:
                if now < window.until:
                    continue  # its commit runs: the next sweep looks again
                window.cut = True
                self.lift(scope._task)  # one cancellation: this scope's answers for all of them
            else:
                del self.scopes[scope]
            scope.expire()
        if self.scopes:
            self.arm()

    def lift(self, task: asyncio.Task[object]) -> None:
        """`task` is no longer bounded by its scopes open now."""
        for scope in [s for s in self.scopes if s._task is task]:
            del self.scopes[scope]


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


class Committing:
    """`with Committing(seconds)` around a statement that commits a write; `seconds` is the
    database's own limit on it (DB_STATEMENT_TIMEOUT).

    The task's open time limits wait for the statement, up to `seconds` and SLACK past its start,
    and are lifted once it succeeds. Cut after that, it raises WriteUnconfirmed in place of the
    cancellation. A cancellation from elsewhere (shutdown) passes through.
    """

    __slots__ = ("_outer", "_task", "cut", "seconds", "until")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.until = 0.0  # loop time after which the task's limits cut it anyway
        self.cut = False  # whether they did

    def __enter__(self) -> Committing:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task(loop)
        if task is None:
            raise RuntimeError("a commit must be made inside a task")
        self._task = task
        self._outer = _committing.get(task)  # None, unless windows nest
        self.until = loop.time() + self.seconds + SLACK
        _committing[task] = self
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        task = self._task
        if self._outer is None:
            del _committing[task]
        else:
            _committing[task] = self._outer
        if kind is None:
            # Committed: what is left (the answer) is not cut.
            if _current is not None and _current.loop is task.get_loop():
                _current.lift(task)
        elif self.cut and kind is asyncio.CancelledError:
            raise WriteUnconfirmed() from None
