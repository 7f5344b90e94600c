"""The key watch: every `HUB_KEY_CHECK_S`, forget the data keys another process destroyed.

Erasing an organization (`hub erase org`, in its own process, or on another node) overwrites its
keys in the database, but a running node holds them unwrapped in memory, with messages it opened
recently. This actor makes every node drop them (and its memory of opened messages) within one
interval; a pass the database cannot answer is logged and tried again at the next.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from uuid import UUID

import trio

from hub.errors import HubError
from hub.storage.sealing import Sealing

log = logging.getLogger(__name__)


class KeyWatch:
    """`on_erased` hears of the organizations whose keys were just forgotten, to close their
    sockets and forget their identities (hub.app wires it to the supervisor and the REST app)."""

    def __init__(
        self,
        sealing: Sealing,
        interval_s: float,
        on_erased: Callable[[set[UUID]], Awaitable[None]] | None = None,
    ) -> None:
        self._sealing = sealing
        self._interval_s = interval_s
        self._on_erased = on_erased

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            await trio.sleep(self._interval_s)
            await self.check()

    async def check(self) -> set[int]:
        """One look; the versions newly forgotten."""
        try:
            forgotten = await self._sealing.forget_destroyed()
        except HubError as exc:
            log.warning("keys: could not check for destroyed keys, trying again: %s", exc)
            return set()
        if forgotten:
            log.info("keys: forgot destroyed data keys %s", sorted(forgotten))
            if self._on_erased is not None:
                await self._on_erased(set(forgotten.values()))
        return set(forgotten)
