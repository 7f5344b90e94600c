"""One deadline per key, earliest first: the heap behind the hub's one-task timers.

The hub keeps thousands of deadlines that mostly never fire (every session's heartbeat and token
expiry, `hub.actors.timers`; every storage request in flight, `hub.storage.lanes`). A task or a
cancel scope for each was what those cost, so each kind lives in one of these heaps, watched by
one task that sleeps until the earliest (docs/performance.md, decision register: "Group commit",
"Heartbeats from one timer task"). Setting, moving and removing a key is O(log n) at most, and
nothing here awaits: the watching task is its owner's.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Hashable
from heapq import heapify, heappop, heappush
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class Deadlines(Generic[K]):
    """One deadline per key, earliest first. Moving or removing a key marks its old heap entry
    dead rather than searching the heap for it. A dead entry drops its key at once, so a session
    that has ended is not kept alive by it. Dead entries are swept out once the heap holds more
    than twice as many entries as there are keys (plus 64), so a socket refreshing its token in
    a loop cannot grow it; those at the top also leave whenever a key is set, which keeps a heap
    of mostly first-in, first-out deadlines (storage requests) near its live size."""

    def __init__(self) -> None:
        self._heap: list[list] = []  # [deadline, tie-breaker, key or None once dead]
        self._live: dict[K, list] = {}
        self._order = itertools.count()

    def __len__(self) -> int:
        return len(self._live)

    def set(self, key: K, deadline: float) -> None:
        live, heap = self._live, self._heap
        old = live.get(key)
        if old is not None:
            old[2] = None
        while heap and heap[0][2] is None:
            heappop(heap)
        live[key] = entry = [deadline, next(self._order), key]
        heappush(heap, entry)
        if len(heap) > 2 * len(live) + 64:
            self._compact()

    def discard(self, key: K) -> None:
        entry = self._live.pop(key, None)
        if entry is not None:
            entry[2] = None
            if len(self._heap) > 2 * len(self._live) + 64:
                self._compact()

    def earliest(self) -> float:
        """The earliest live deadline (inf if none)."""
        heap = self._heap
        while heap and heap[0][2] is None:
            heappop(heap)
        return heap[0][0] if heap else math.inf

    def pop_due(self, now: float) -> list[K]:
        """Remove and return the keys whose deadline is `now` or earlier, earliest first."""
        heap, due = self._heap, []
        while heap and heap[0][0] <= now:
            key = heappop(heap)[2]
            if key is not None:
                del self._live[key]
                due.append(key)
        return due

    def _compact(self) -> None:
        self._heap = [entry for entry in self._heap if entry[2] is not None]
        heapify(self._heap)
