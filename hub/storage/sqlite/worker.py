"""Running a blocking SQLite call in a worker thread, without naming the thread for each call.

`trio.to_thread.run_sync` names its worker thread after every call it runs and names it back
afterwards, through ctypes, and each of those foreign calls lets go of the GIL and must win it
back. The SQLite engine hops to a worker for every commit (and then, for every read too; now
only for reads that outgrow their inline budget, hub.storage.sqlite.reads), and once the Trio
thread is busy, every GIL hand-over costs it time (see `hub.cli.tune_runtime`), which showed in
POST latency (docs/performance.md, decision register: "SQLite worker hops without thread
naming"). This is `to_thread.run_sync` with `abandon_on_cancel=False`, on the same
thread cache (`trio.lowlevel.start_thread_soon`), minus the naming and minus `trio.from_thread`
support, which SQLite calls never need.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import trio

if TYPE_CHECKING:
    import outcome

T = TypeVar("T")


async def run_sync(
    fn: Callable[..., T], *args: Any, limiter: trio.CapacityLimiter | None = None
) -> T:
    """`fn(*args)` in a worker thread. Like trio's, a checkpoint before it starts and then not
    cancellable: once started, the call runs to its end and its result or error comes back
    (a half-done transaction is never left behind by a cancelled caller)."""
    await trio.lowlevel.checkpoint_if_cancelled()
    limiter = limiter or trio.to_thread.current_default_thread_limiter()
    borrower = object()
    await limiter.acquire_on_behalf_of(borrower)
    try:
        task = trio.lowlevel.current_task()
        token = trio.lowlevel.current_trio_token()
        context = contextvars.copy_context()

        def deliver(result: outcome.Outcome[T]) -> None:
            # The run cannot end while the task waits here (it cannot be cancelled), but if
            # it somehow has, there is nobody left to tell.
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(trio.lowlevel.reschedule, task, result)

        trio.lowlevel.start_thread_soon(functools.partial(context.run, fn, *args), deliver)
        return await trio.lowlevel.wait_task_rescheduled(
            lambda _raise_cancel: trio.lowlevel.Abort.FAILED
        )
    finally:
        limiter.release_on_behalf_of(borrower)
