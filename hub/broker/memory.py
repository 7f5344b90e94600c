"""The in-process broker: the default when `HUB_REDIS_URL` is unset, where one process is the
whole hub, and the bus of in-process test clusters, where several hubs share one `MemoryBus`.

It keeps the contract of hub.broker.contract with no server in between: `publish` hands the
event to every other node on the bus that watches the thread, through its sink (which never
blocks), and a node alone on its bus publishes nothing at all. `MemoryBus.down()` and `up()`
play a broker outage for tests: while down, nothing crosses, `connected` is False, and coming
back up resubscribes every node as the Redis broker does after reconnecting.

Presence and limits: a node alone has no cluster stores (`presence` and `limits` are None, and
the realtime layer decides alone, at once). Nodes on a bus given to them share in-memory stores
(hub.broker.presence, hub.broker.limits) as they would share Redis, unavailable while it is down.
"""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID

import trio

from hub.broker.contract import BrokerSink
from hub.broker.events import ControlEvent, ThreadEvent
from hub.broker.gate import Gate
from hub.broker.limits import MemoryLimits, MemoryLimitsState
from hub.broker.presence import MemoryPresence, MemoryPresenceState
from hub.metrics import Metrics

# A test's fault hook: True drops the event (as a lost publish).
DropHook = Callable[[UUID, ThreadEvent], bool]


class MemoryBus:
    """What the nodes of one process share."""

    def __init__(self) -> None:
        self.nodes: dict[str, MemoryBroker] = {}
        self.is_up = True
        self.presence = MemoryPresenceState()
        self.limits = MemoryLimitsState()

    def down(self) -> None:
        self.is_up = False

    def up(self) -> None:
        self.is_up = True
        for node in self.nodes.values():
            node.resubscribe_all()


class MemoryBroker:
    """One node on a `MemoryBus` (see the module docstring)."""

    name = "memory"

    def __init__(
        self,
        node_id: str,
        bus: MemoryBus | None = None,
        *,
        metrics: Metrics | None = None,
        drop: DropHook | None = None,
        ttl_s: float = 30.0,
    ) -> None:
        self.node_id = node_id
        self.presence: Gate | None = None
        self.limits: Gate | None = None
        if bus is not None:
            presence = MemoryPresence(bus.presence, node_id=node_id, ttl_s=ttl_s)
            limits = MemoryLimits(bus.limits, node_id=node_id, ttl_s=ttl_s)
            self.presence = Gate(lambda: presence if bus.is_up else None, "presence")
            self.limits = Gate(lambda: limits if bus.is_up else None, "limits")
        self.bus = bus if bus is not None else MemoryBus()
        self.drop = drop
        self.metrics = metrics if metrics is not None else Metrics(node_id)
        self._sink: BrokerSink | None = None
        self._watched: set[UUID] = set()
        # Subscriptions take effect in the broker's own task, as they would with a server.
        self._new, self._new_watches = trio.open_memory_channel[UUID](4096)

    @property
    def connected(self) -> bool:
        return self.bus.is_up

    async def run(
        self, sink: BrokerSink, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        if self.node_id in self.bus.nodes:
            raise ValueError(f"node {self.node_id!r} is already on this bus")
        self._sink = sink
        self.bus.nodes[self.node_id] = self
        try:
            task_status.started()
            async for thread_id in self._new_watches:
                if thread_id in self._watched:
                    sink.resubscribed((thread_id,))
        finally:
            del self.bus.nodes[self.node_id]
            self._sink = None

    def publish(self, thread_id: UUID, event: ThreadEvent) -> None:
        if len(self.bus.nodes) < 2:
            return  # alone: nobody to tell
        if not self.bus.is_up or (self.drop is not None and self.drop(thread_id, event)):
            self.metrics.broker_publish_failures.inc()
            return
        for node in self.bus.nodes.values():
            if node is not self and thread_id in node._watched and node._sink is not None:
                node._sink.thread_event(thread_id, event)

    def publish_control(self, event: ControlEvent) -> None:
        if len(self.bus.nodes) < 2:
            return
        if not self.bus.is_up:
            self.metrics.broker_publish_failures.inc()
            return
        for node in self.bus.nodes.values():
            if node is not self and node._sink is not None:
                node._sink.control_event(event)

    def watch(self, thread_id: UUID) -> None:
        if thread_id in self._watched:
            return
        self._watched.add(thread_id)
        try:
            self._new.send_nowait(thread_id)
        except trio.WouldBlock:
            pass  # thousands of joins at once: the periodic seq check covers the rest

    def unwatch(self, thread_id: UUID) -> None:
        self._watched.discard(thread_id)

    def resubscribe_all(self) -> None:
        if self._sink is not None and self._watched:
            self._sink.resubscribed(tuple(self._watched))
