"""The SQLite engine's worker-thread hop (hub.storage.sqlite.worker)."""

from __future__ import annotations

import threading
import time

import pytest
import trio

from hub.storage.sqlite.worker import run_sync


async def test_the_result_and_the_error_of_the_call_come_back():
    assert await run_sync(lambda a, b: a + b, 2, 3) == 5

    def fails() -> None:
        raise ValueError("no such column: nope")

    with pytest.raises(ValueError, match="no such column"):
        await run_sync(fails)


async def test_the_call_runs_in_another_thread_which_keeps_its_name():
    seen = await run_sync(lambda: (threading.get_ident(), threading.current_thread().name))

    assert seen[0] != threading.get_ident()
    assert "from" not in seen[1]  # not renamed after the call and its task


async def test_a_call_that_started_runs_to_its_end_even_when_its_caller_is_cancelled():
    finished = []

    def slow_commit() -> str:
        time.sleep(0.2)
        finished.append(True)
        return "committed"

    with trio.move_on_after(0.01) as scope:
        result = await run_sync(slow_commit)

    assert (result, finished) == ("committed", [True])
    assert scope.cancel_called


async def test_a_caller_cancelled_before_the_call_starts_runs_nothing():
    ran = []
    with trio.CancelScope() as scope:
        scope.cancel()
        await run_sync(ran.append, 1)

    assert ran == []


async def test_the_limiter_bounds_how_many_calls_run_at_once():
    limiter = trio.CapacityLimiter(1)
    running, most = 0, 0
    lock = threading.Lock()

    def read() -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.02)
        with lock:
            running -= 1

    async with trio.open_nursery() as nursery:
        for _ in range(4):
            nursery.start_soon(lambda: run_sync(read, limiter=limiter))

    assert most == 1
    assert limiter.borrowed_tokens == 0
