"""The escalation actor: reminds organizations that have not acknowledged a message that asked
them, on the interval their group's policy gives for how close the wedding is
(`hub.notifications.policy`), escalating to their owners and admins, until one of them confirms
or the wedding day is over (docs/notifications.md).

One actor per hub node, owned by `run_hub`'s nursery. Each pass reminds what is due in one
transaction (`hub.storage.notifications.remind_due`): the reminders' notifications go to the
outbox with the request's new count and next time, so a crash between them is impossible and
two nodes never remind the same request twice. The dispatcher is woken for what was written.
The actor sleeps until the earliest request is due, and at least every `poll_s` (requests other
nodes wrote); its times are read on Trio's clock from a wall-clock moment taken at start, so
trio's autojump clock moves them in tests.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

import trio

from hub.errors import HubError
from hub.metrics import Metrics
from hub.storage import Storage
from hub.storage.notifications import next_reminder_due, remind_due

log = logging.getLogger(__name__)


class Reminders(Protocol):
    """Where the actor's work is (`StoredReminders`; tests give their own)."""

    async def remind(self, now: datetime) -> int: ...

    async def next_due(self) -> datetime | None: ...


class StoredReminders:
    def __init__(self, storage: Storage, metrics: Metrics | None = None, batch: int = 100) -> None:
        self._storage = storage
        self._metrics = metrics
        self.batch = batch

    async def remind(self, now: datetime) -> int:
        outward = self._storage.outward
        reminded = await self._storage.write(lambda _: remind_due(now, outward, self.batch))
        if reminded:
            self._storage.outbox_written()
            if self._metrics is not None:
                self._metrics.notification_reminders.inc(reminded)
        return reminded

    async def next_due(self) -> datetime | None:
        return await self._storage.read(next_reminder_due())


@dataclass
class Escalation:
    reminders: Reminders
    poll_s: float = 30.0
    wall_clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    reminded: int = 0

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        anchor_wall, anchor = self.wall_clock(), trio.current_time()

        def now() -> datetime:
            return anchor_wall + timedelta(seconds=trio.current_time() - anchor)

        task_status.started()
        while True:
            due = None
            try:
                count = await self.reminders.remind(now())
                self.reminded += count
                due = await self.reminders.next_due()
            except HubError as exc:  # the database is down or slow: look again later
                log.warning("notifications: reminders failed, trying again: %s", exc)
            except Exception:
                # A defect here must not take the hub's messaging down: logged, tried again.
                log.exception("notifications: reminder pass failed, trying again")
            delay = self.poll_s
            if due is not None:
                delay = min(delay, max(0.0, (due - now()).total_seconds()))
            await trio.sleep(delay)
