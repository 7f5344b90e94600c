"""The attachment sweep: uploads never attached to a message are removed once they are
HUB_ATTACHMENT_ORPHAN_HOURS old, and blobs no row names (a crash between a blob's write and its
row's, or between a row's removal and its blob's) are collected.

One actor per hub, owned by `run_hub`'s nursery. Ages are read on Trio's clock from a wall-clock
moment taken once at start, so a wall clock that jumps cannot make the sweep remove early, and a
test can move time with trio's autojump clock. A failed pass (database or blob store down) is
logged and tried again next period; it never ends the hub. With several nodes each sweeps:
removing a row is conditional and removing a blob twice is harmless.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

import trio

from hub.errors import HubError

log = logging.getLogger(__name__)


class Sweepable(Protocol):
    async def remove_orphans(self, before: datetime) -> int: ...

    async def collect_strays(self, candidates: set[str]) -> tuple[int, set[str]]: ...


def sweep_period_s(orphan_hours: float) -> float:
    """How often to look: a quarter of the orphan age, between a minute and an hour, so an
    upload outlives its allowance by at most a quarter of it."""
    return min(3600.0, max(60.0, orphan_hours * 3600 / 4))


async def run_sweeper(
    attachments: Sweepable,
    orphan_hours: float,
    *,
    wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Sweep every `sweep_period_s(orphan_hours)` until cancelled."""
    anchor_wall, anchor = wall_clock(), trio.current_time()
    allowance = timedelta(hours=orphan_hours)
    period = sweep_period_s(orphan_hours)
    strays: set[str] = set()
    task_status.started()
    while True:
        await trio.sleep(period)
        now = anchor_wall + timedelta(seconds=trio.current_time() - anchor)
        try:
            removed = await attachments.remove_orphans(now - allowance)
            collected, strays = await attachments.collect_strays(strays)
        except HubError as exc:  # the database is down or slow: next period
            log.warning("attachments: sweep failed, trying again in %.0fs: %s", period, exc)
            continue
        except Exception:  # the blob store's own errors, whichever store it is
            log.exception("attachments: sweep failed, trying again in %.0fs", period)
            continue
        if removed or collected:
            log.info(
                "attachments: removed %d unattached uploads older than %gh, %d stray blobs",
                removed,
                orphan_hours,
                collected,
            )
