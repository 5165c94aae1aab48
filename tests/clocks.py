"""A clock the test moves forward, so that minutes pass without waiting for them.

`moved_clock` moves time.monotonic (which the event loop, the pools and SQLite's progress handler
read) and the wall clock botocore signs with (so an IAM token is signed at the moved time).
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import botocore.auth
import pytest

__all__ = ["MovedClock", "moved_clock"]


class MovedClock:
    def __init__(self) -> None:
        self._monotonic = time.monotonic
        self._ahead = 0.0

    def monotonic(self) -> float:
        return self._monotonic() + self._ahead

    def now(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self._ahead)

    def advance(self, seconds: float) -> None:
        self._ahead += seconds

    async def elapse(self, seconds: float) -> None:
        """Advance, and let the event loop run what fell due meanwhile (pools' idle timers...)."""
        self.advance(seconds)
        # Timers run in the order they are due: every overdue one before this short sleep ends.
        await asyncio.sleep(0.01)
        await asyncio.sleep(0)  # and what they scheduled


@pytest.fixture
def moved_clock(monkeypatch: pytest.MonkeyPatch) -> MovedClock:
    clock = MovedClock()
    monkeypatch.setattr(time, "monotonic", clock.monotonic)

    def signing_time(remove_tzinfo: bool = True) -> datetime:
        now = clock.now()
        return now.replace(tzinfo=None) if remove_tzinfo else now

    monkeypatch.setattr(botocore.auth, "get_current_datetime", signing_time)
    return clock
