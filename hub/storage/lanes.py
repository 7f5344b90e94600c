"""The write lanes: how a request reaches a storage actor, and how long its caller waits.

Each lane is one `StorageActor` with its own inbox and write connection. A message goes to the
lane of its thread (`lane_of`), so one thread's appends are committed in order by one
connection, while the appends of other threads commit at the same time on another: every append
batch locks its threads' rows until COMMIT, and two connections sharing threads would only wait
on each other. Every other write goes to lane 0. SQLite has one lane (one write lock per
database); docs/storage.md, "Lanes", says when more than one pays.

A full inbox makes the caller wait for room (backpressure), never past its deadline. Once in an
inbox, a request's deadline is one entry in a shared heap (`hub.deadlines.Deadlines`) watched by
one task, not a cancel scope of its own: with thousands of writers in flight, a scope each cost
as much as the rest of the round trip through a null engine (docs/performance.md, decision
register: "Group commit"). Only requests still waiting in the inbox are failed by it: once the
actor has taken a request into a batch, it answers with the commit's real outcome (bounded by
the engine's own lock and query timeouts), so a stored message is never reported as not stored.
The task sleeps until the earliest deadline, so an idle hub has no timer ticking.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator, Sequence
from typing import Any
from uuid import UUID

import trio

from hub.config import Settings
from hub.deadlines import Deadlines
from hub.errors import StorageUnavailable
from hub.metrics import Metrics
from hub.storage.actor import Request, StorageActor, StorageStats
from hub.storage.engine import Engine
from hub.storage.sql import ConnectionLost


class Lanes:
    """The lanes' inboxes and actors, and the one task that keeps their requests' deadlines
    (`run_deadlines`, started by `open_lanes`)."""

    def __init__(
        self,
        inboxes: Sequence[trio.MemorySendChannel[Request]],
        actors: Sequence[StorageActor],
        timeout_s: float,
    ) -> None:
        self._inboxes = list(inboxes)
        self._actors = list(actors)
        self._timeout_s = timeout_s
        self._deadlines: Deadlines[Request] = Deadlines()
        # The watcher's sleep and when it ends (kept apart: cheaper to read than the scope's).
        self._sleep = trio.CancelScope()
        self._wake_at = math.inf
        self._stopped = False

    @property
    def stats(self) -> StorageStats:
        """All lanes' counters together (`lane_stats` has them one by one)."""
        lanes = self.lane_stats
        return StorageStats(
            commits=sum(s.commits for s in lanes),
            requests_committed=sum(s.requests_committed for s in lanes),
            batches_failed=sum(s.batches_failed for s in lanes),
            reconnects=sum(s.reconnects for s in lanes),
            largest_batch=max(s.largest_batch for s in lanes),
            connected=all(s.connected for s in lanes),
        )

    @property
    def lane_stats(self) -> list[StorageStats]:
        return [actor.stats for actor in self._actors]

    @property
    def inbox_depths(self) -> list[int]:
        """Requests waiting in each lane's inbox now."""
        return [inbox.statistics().current_buffer_used for inbox in self._inboxes]

    def lane_of(self, thread_id: UUID) -> int:
        return thread_id.int % len(self._inboxes)

    async def submit(self, request: Request, timeout_s: float | None = None) -> Any:
        """Hand the request to its lane and wait for the answer; raise the request's error, or
        StorageUnavailable when no lane took it within `timeout_s` (default: the storage's)."""
        message = request.message
        inbox = self._inboxes[0 if message is None else self.lane_of(message.thread_id)]
        timeout_s = request.timeout_s = timeout_s or self._timeout_s
        deadline = trio.current_time() + timeout_s
        try:
            inbox.send_nowait(request)
        except trio.WouldBlock:
            # The inbox is full: wait for room (backpressure), but not past the deadline.
            with trio.move_on_at(deadline):
                await inbox.send(request)
            if trio.current_time() >= deadline:
                raise StorageUnavailable(
                    f"storage did not accept the request within {timeout_s}s"
                ) from None
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise StorageUnavailable("storage is shutting down") from None
        deadlines = self._deadlines
        deadlines.set(request, deadline)
        if deadline < self._wake_at:
            self._wake_at = self._sleep.deadline = deadline  # wake the watcher earlier
        try:
            await request.done.wait()
        finally:
            deadlines.discard(request)
        if request.error is not None:
            raise request.error
        return request.value

    async def run_deadlines(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Fail the requests still in an inbox at their deadline, until `stop_deadlines`."""
        task_status.started()
        deadlines = self._deadlines
        while not self._stopped:
            self._wake_at = deadlines.earliest()
            with trio.CancelScope(deadline=self._wake_at) as self._sleep:
                await trio.sleep_forever()
            for request in deadlines.pop_due(trio.current_time()):
                if request.taken:
                    continue  # in a commit: the actor answers with what really happened
                request.fail(
                    StorageUnavailable(
                        f"the database did not take the request within {request.timeout_s}s"
                    )
                )

    def stop_deadlines(self) -> None:
        self._stopped = True
        self._sleep.cancel()

    async def aclose(self) -> None:
        """Close every inbox: each actor commits what it had accepted, then ends."""
        for inbox in self._inboxes:
            await inbox.aclose()


@contextlib.asynccontextmanager
async def open_lanes(
    engine: Engine, settings: Settings, metrics: Metrics | None = None
) -> AsyncIterator[Lanes]:
    """The storage actors, connected and running, with their deadline watcher, for the duration
    of the block; leaving it closes the inboxes and waits for the actors to commit what they
    had accepted. Every actor counts its batches in `metrics` (one of their own without it)."""
    metrics = metrics if metrics is not None else Metrics()
    lanes = settings.storage_writers if engine.parallel_writers else 1
    channels = [
        trio.open_memory_channel[Request](settings.storage_inbox_size) for _ in range(lanes)
    ]
    actors = [
        StorageActor(
            engine,
            receive,
            batch_max=settings.storage_batch_max,
            upkeep=lane == 0,
            metrics=metrics,
        )
        for lane, (_, receive) in enumerate(channels)
    ]
    async with trio.open_nursery() as nursery:
        try:
            for actor in actors:
                await nursery.start(actor.run)
        except ConnectionLost as exc:
            raise StorageUnavailable(f"cannot reach the database: {exc}") from None
        running = Lanes([send for send, _ in channels], actors, settings.storage_timeout_s)
        await nursery.start(running.run_deadlines)
        try:
            yield running
        finally:
            await running.aclose()
            running.stop_deadlines()
