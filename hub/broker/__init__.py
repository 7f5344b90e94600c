"""Crossing nodes: what one hub process tells the others, and what they share.

PostgreSQL is the log and the only source of truth; the broker carries what makes N processes
behave as one hub: committed messages and ephemeral thread events (typing, receipts, presence)
to the nodes that have subscribers, revocations to every node, and the per-user state that must
hold across nodes (presence, connection and message limits). `memory` serves one process (and
in-process test clusters); `redis` serves several, over coredis.
"""

from __future__ import annotations

from hub.broker.contract import Broker, BrokerSink
from hub.broker.errors import BrokerUnavailable
from hub.config import Settings
from hub.metrics import Metrics

__all__ = ["Broker", "BrokerSink", "BrokerUnavailable", "make_broker"]


def make_broker(settings: Settings, metrics: Metrics) -> Broker:
    """The Redis broker when `HUB_REDIS_URL` is set, else this process alone, in memory."""
    if settings.redis_url is None:
        from hub.broker.memory import MemoryBroker

        return MemoryBroker(settings.node_id, metrics=metrics, ttl_s=settings.presence_ttl_s)
    from hub.broker.redis import RedisBroker

    return RedisBroker(
        settings.redis_url,
        prefix=settings.redis_prefix,
        node_id=settings.node_id,
        metrics=metrics,
        ttl_s=settings.presence_ttl_s,
    )
