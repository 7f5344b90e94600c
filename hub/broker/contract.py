"""The broker's contract, one interface for one process (hub.broker.memory) and for many
(hub.broker.redis).

    socket → session → thread actor → storage (commit) → broker → thread actors on every node

- `publish` delivers at most once, to the nodes that watch the thread, and never waits: it
  queues, and drops (counting a publish failure) when the broker is down or its queue is full.
  A receiving thread actor detects a gap by seq and fills it from storage, and the seq check
  (hub.actors.seqcheck) finds a lost *last* message within a few seconds; so PostgreSQL, not
  the broker, decides what every subscriber gets.
- `watch`/`unwatch` say which threads' events this node wants (its running thread actors).
  Each time subscriptions are (re)established the broker calls `sink.resubscribed` with the
  threads concerned, after the subscription took effect, so whatever was published before is
  then found by a seq check, and presence reloaded.
- `publish_control` reaches every node (revocations, status changes), at most once.
- `connected` is False while the broker cannot reach its server: presence, typing and limits
  are then local to each node, fan-out across nodes falls back to polling PostgreSQL, and the
  broker reconnects with jittered backoff by itself.
- The sink's methods never block: the broker's reader hands events on and reads the next.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Protocol
from uuid import UUID

import trio

from hub.broker.events import ControlEvent, ThreadEvent
from hub.metrics import Metrics


class BrokerSink(Protocol):
    """Where the events of other nodes go (the realtime layer: hub.actors.registry)."""

    def thread_event(self, thread_id: UUID, event: ThreadEvent) -> None: ...

    def control_event(self, event: ControlEvent) -> None: ...

    def resubscribed(self, thread_ids: Collection[UUID]) -> None: ...


class Broker(Protocol):
    """Fan-out and control across nodes (see the module's contract)."""

    name: str  # "memory" or "redis", for /readyz and logs
    node_id: str
    metrics: Metrics  # the hub's: publish failures, reconnects
    # The cluster's presence and limits stores (hub.broker.presence, hub.broker.limits); None
    # for a hub that is one process, where each node decides alone and at once.
    presence: Any
    limits: Any

    @property
    def connected(self) -> bool: ...

    async def run(
        self, sink: BrokerSink, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None: ...

    def publish(self, thread_id: UUID, event: ThreadEvent) -> None: ...

    def publish_control(self, event: ControlEvent) -> None: ...

    def watch(self, thread_id: UUID) -> None: ...

    def unwatch(self, thread_id: UUID) -> None: ...
