"""The seq check: every few seconds, each thread with subscribers on this node compares what it
delivered with the `last_seq` stored in the database, and reads what it is missing.

Why: the broker delivers at most once (hub.broker.contract). A lost publish in the middle of a
thread shows as a gap at the next message and is filled at once; a lost *last* message shows in
nothing but this check. While the broker is down it is the only way messages cross nodes, so it
runs three times as often then and counts each round as a fallback poll. One query a round, for
all of this node's live threads, in chunks.

Revocations are polled the same way while the broker is down, and once more after it is back
(covering the last round's gap): organizations removed from a group since the outage began
(less `CLOCK_MARGIN`, for clocks of nodes that disagree) have their live traffic ended here too.
Applying one twice is harmless: a second finds nothing left to end.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from uuid import UUID

import trio

from hub.actors.registry import ThreadRegistry
from hub.actors.thread import CheckSeq
from hub.broker.contract import Broker
from hub.errors import HubError
from hub.metrics import Metrics
from hub.storage import Storage
from hub.storage.groups import removals_since
from hub.storage.threads import last_seqs

log = logging.getLogger(__name__)

CHUNK = 500
DEGRADED_FACTOR = 3
CLOCK_MARGIN = timedelta(seconds=60)

Revoked = Callable[[UUID, UUID], Awaitable[None]]


class SeqCheck:
    """The periodic seq check of this node's live threads (see the module docstring)."""

    def __init__(
        self,
        storage: Storage,
        threads: ThreadRegistry,
        broker: Broker,
        metrics: Metrics,
        *,
        interval_s: float,
        revoked: Revoked | None = None,
    ) -> None:
        self._revoked = revoked
        self._removals_after: datetime | None = None  # set while the broker is down
        self._applied: set[tuple[UUID, UUID, datetime]] = set()
        self._storage = storage
        self._threads = threads
        self._broker = broker
        self._metrics = metrics
        self._interval_s = interval_s

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            degraded = not self._broker.connected
            await trio.sleep(self._interval_s / DEGRADED_FACTOR if degraded else self._interval_s)
            if not self._broker.connected:
                self._metrics.fallback_polls.inc()
                if self._removals_after is None:
                    self._removals_after = datetime.now(UTC) - CLOCK_MARGIN
            if self._removals_after is not None:
                await self._poll_removals()
                if self._broker.connected:
                    self._removals_after = None  # back: that was the last round
                    self._applied.clear()
            await self.check_once()

    async def _poll_removals(self) -> None:
        assert self._removals_after is not None
        if self._revoked is None:
            return
        try:
            removed = await self._storage.read(removals_since(self._removals_after))
        except HubError as exc:
            log.warning("seq check: revocations not read: %s", exc)
            return
        for removal in removed:
            if removal not in self._applied:
                self._applied.add(removal)
                await self._revoked(removal[0], removal[1])

    async def check_once(self) -> None:
        """One round: read the live threads' stored last seqs and hand each to its actor."""
        ids = [actor.thread_id for actor in self._threads.live()]
        for start in range(0, len(ids), CHUNK):
            try:
                stored = await self._storage.read(last_seqs(ids[start : start + CHUNK]))
            except HubError as exc:
                log.warning("seq check: the database did not answer: %s", exc)
                return
            for thread_id, last_seq in stored.items():
                self._threads.notify(thread_id, CheckSeq(last_seq))
