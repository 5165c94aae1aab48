"""The per-request time limits' scope (gateway.deadlines), on both event loops the gateway runs."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from contextlib import nullcontext
from typing import Any

import pytest
import uvloop

from gateway.deadlines import RESOLUTION, SLACK, Committing, Deadline
from gateway.errors import WriteUnconfirmed

LOOPS = [asyncio.run, uvloop.run]
Run = Callable[[Coroutine[Any, Any, Any]], Any]


@pytest.mark.parametrize("run", LOOPS, ids=["asyncio", "uvloop"])
def test_a_body_past_its_deadline_is_cancelled_with_timeout_error(run: Run) -> None:
    async def main() -> tuple[float, bool, bool]:
        cleaned_up = False
        loop = asyncio.get_running_loop()  # deadlines are on the loop's clock, as asyncio.timeout's
        started = loop.time()
        with pytest.raises(TimeoutError), Deadline(0.2) as scope:
            try:
                await asyncio.sleep(5)
            finally:
                cleaned_up = True
        task = asyncio.current_task()
        assert task is not None
        return loop.time() - started, scope.expired(), task.cancelling() == 0 and cleaned_up

    took, expired, clean = run(main())
    assert 0.2 - 1e-6 <= took < 0.2 + RESOLUTION + 0.5
    assert expired and clean  # the task is not left cancelling: it goes on after the scope


@pytest.mark.parametrize("run", LOOPS, ids=["asyncio", "uvloop"])
def test_a_body_within_its_deadline_is_untouched(run: Run) -> None:
    async def main() -> tuple[str, bool]:
        with Deadline(0.05) as scope:
            value = "done"
        await asyncio.sleep(0.3)  # past the deadline, outside the scope: nothing cancels it
        return value, scope.expired()

    assert run(main()) == ("done", False)


@pytest.mark.parametrize("run", LOOPS, ids=["asyncio", "uvloop"])
@pytest.mark.parametrize("in_commit", [False, True], ids=["deadline", "commit"])
def test_a_cancellation_from_elsewhere_passes_through(run: Run, in_commit: bool) -> None:
    async def main() -> bool:
        async def inner() -> None:
            with Deadline(5), Committing(5) if in_commit else nullcontext():
                await asyncio.sleep(5)

        task = asyncio.create_task(inner())
        await asyncio.sleep(0.01)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            return True
        return False

    assert run(main())


@pytest.mark.parametrize("run", LOOPS, ids=["asyncio", "uvloop"])
def test_nested_deadlines_each_end_their_own_scope(run: Run) -> None:
    async def main() -> list[str]:
        seen = []
        with Deadline(2) as outer:
            try:
                with Deadline(0.1):
                    await asyncio.sleep(5)
            except TimeoutError:
                seen.append("inner timed out")
            await asyncio.sleep(0.01)
            seen.append("outer still running")
        seen.append(f"outer expired: {outer.expired()}")
        return seen

    assert run(main()) == ["inner timed out", "outer still running", "outer expired: False"]


def test_many_concurrent_scopes_each_expire_on_time() -> None:
    async def one(seconds: float) -> float:
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            with Deadline(seconds):
                await asyncio.sleep(10)
        except TimeoutError:
            return loop.time() - started - seconds
        raise AssertionError("not cut off")

    async def main() -> list[float]:
        return await asyncio.gather(*(one(0.1 + i * 0.01) for i in range(100)))

    lateness = uvloop.run(main())
    assert all(-1e-6 <= late < RESOLUTION + 0.5 for late in lateness), (min(lateness), max(lateness))


@pytest.mark.parametrize("run", LOOPS, ids=["asyncio", "uvloop"])
def test_a_commit_past_the_deadline_is_waited_for_and_its_answer_is_not_cut(run: Run) -> None:
    async def main() -> tuple[str, bool, int]:
        with Deadline(0.1) as outer, Deadline(0.15) as inner:
            with Committing(5):
                await asyncio.sleep(0.4)  # the commit, past both deadlines
            await asyncio.sleep(0.2)  # the answer, after it landed
            value = "answered"
        task = asyncio.current_task()
        assert task is not None
        return value, outer.expired() or inner.expired(), task.cancelling()

    assert run(main()) == ("answered", False, 0)


@pytest.mark.parametrize("run", LOOPS, ids=["asyncio", "uvloop"])
def test_a_deadline_still_cuts_what_runs_after_a_commit_that_failed(run: Run) -> None:
    async def main() -> list[str]:
        seen = []
        with pytest.raises(TimeoutError), Deadline(0.1):
            try:
                with Committing(5):
                    await asyncio.sleep(0.2)
                    raise ConnectionError("the commit failed")
            except ConnectionError:
                seen.append("commit failed")
            await asyncio.sleep(5)  # cut: nothing landed, the limit stands
        return seen

    assert run(main()) == ["commit failed"]


@pytest.mark.parametrize("run", LOOPS, ids=["asyncio", "uvloop"])
def test_a_commit_past_the_databases_own_limit_is_cut_as_unconfirmed(run: Run) -> None:
    async def main() -> tuple[float, int]:
        loop = asyncio.get_running_loop()
        started = loop.time()
        unconfirmed = pytest.raises(WriteUnconfirmed, match="may have been saved")
        with unconfirmed, Deadline(0.05), Deadline(0.06), Committing(0.1):
            await asyncio.sleep(10)
        task = asyncio.current_task()
        assert task is not None
        return loop.time() - started, task.cancelling()

    took, cancelling = run(main())
    assert 0.1 + SLACK - 1e-6 <= took < 0.1 + SLACK + RESOLUTION + 0.5
    assert cancelling == 0  # one cancellation for both scopes, taken back: the task goes on
