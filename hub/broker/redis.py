"""The Redis broker: fan-out and control across nodes over Redis pub/sub, through coredis.

Channels, all under `HUB_REDIS_PREFIX` (pub/sub ignores database numbers, so the prefix is what
keeps two hubs on one Redis apart): `{prefix}:thread:{thread_id}` per thread, subscribed by the
nodes that run its actor, and `{prefix}:control`, subscribed by every node.

It keeps the contract of hub.broker.contract:

- One connection task (`run`) owns the client and the subscriber connection. Any failure (lost
  connection, a PING unanswered within `PING_TIMEOUT_S`) ends both; the task marks the broker
  disconnected, waits a jittered, growing backoff (`BACKOFF_MIN_S` to `BACKOFF_MAX_S`, full
  jitter, so a fleet does not reconnect in step), connects again, subscribes the control
  channel and every watched thread, and reports them all to `sink.resubscribed`.
- `publish` never waits: it puts the event in a bounded queue (`PUBLISH_QUEUE`) that one task
  drains, pipelining what has accumulated; down or full, the event is dropped and counted.
- `watch`/`unwatch` only record what is wanted; one task reconciles it with what is
  subscribed, in batches, and reports each batch to `sink.resubscribed` once Redis confirmed.
- `presence` and `limits` (hub.broker.presence, hub.broker.limits) are bound to the client
  of the moment: made at each connect, unavailable (`BrokerUnavailable`) in between.
- coredis is used with its retries off (`NoRetryPolicy`): reconnecting, and what to do about
  what was missed meanwhile, is this module's decision, not the client's.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from uuid import UUID

import coredis
import msgspec
import trio
from coredis.retry import NoRetryPolicy

from hub.broker.contract import BrokerSink
from hub.broker.events import (
    ControlEvent,
    ThreadEvent,
    decode_control_event,
    decode_thread_event,
    encode,
)
from hub.broker.limits import RedisLimits
from hub.broker.presence import RedisPresence
from hub.broker.redisstore import REDIS_FAILURES
from hub.config import redact_url
from hub.metrics import Metrics

log = logging.getLogger(__name__)

PUBLISH_QUEUE = 10_000
PUBLISH_BATCH = 256
SUBSCRIBE_BATCH = 512
PING_INTERVAL_S = 1.0
# Generous: an overloaded node answers its own timers late, and calling a reachable Redis down
# costs a resubscription of every thread (seen at 2 s with both cores full).
PING_TIMEOUT_S = 5.0
CONNECT_TIMEOUT_S = 2.0
BACKOFF_MIN_S = 0.2
BACKOFF_MAX_S = 5.0

DropHook = Callable[[UUID, ThreadEvent], bool]


class SubscriptionEnded(Exception):
    """coredis stopped iterating the subscriber connection's messages."""


# What ends a connection: a Redis failure, a deadline of ours, or the subscription's end.
_CONNECTION_FAILURES = (*REDIS_FAILURES, trio.TooSlowError, SubscriptionEnded)


class RedisBroker:
    """Pub/sub across nodes (see the module docstring)."""

    name = "redis"

    def __init__(
        self,
        url: str,
        *,
        prefix: str,
        node_id: str,
        metrics: Metrics | None = None,
        drop: DropHook | None = None,
        ttl_s: float = 30.0,
    ) -> None:
        self.url = url
        self.ttl_s = ttl_s
        # Bound to the client of the moment: unavailable (BrokerUnavailable) while there is none.
        self.presence = RedisPresence(
            self._current_client, prefix=prefix, node_id=node_id, ttl_s=ttl_s
        )
        self.limits = RedisLimits(self._current_client, prefix=prefix, node_id=node_id, ttl_s=ttl_s)
        self.prefix = prefix
        self.node_id = node_id
        self.drop = drop
        self.metrics = metrics if metrics is not None else Metrics(node_id)
        self._control = f"{prefix}:control".encode()
        self._thread_prefix = f"{prefix}:thread:".encode()
        self._connected = False
        self._watched: set[UUID] = set()
        self._changed = trio.Event()
        self._send, self._queue = trio.open_memory_channel[tuple[bytes, bytes]](PUBLISH_QUEUE)
        self.client: coredis.Redis[bytes] | None = None  # while connected (presence, limits)
        self.connections = 0  # successful connects, the first included

    @property
    def connected(self) -> bool:
        return self._connected

    def _current_client(self) -> coredis.Redis[bytes] | None:
        return self.client

    def channel(self, thread_id: UUID) -> bytes:
        return self._thread_prefix + str(thread_id).encode()

    # --- what the realtime layer calls (never blocks) --------------------------------------------

    def publish(self, thread_id: UUID, event: ThreadEvent) -> None:
        if not self._connected or (self.drop is not None and self.drop(thread_id, event)):
            self.metrics.broker_publish_failures.inc()
            return
        self._enqueue(self.channel(thread_id), encode(event))

    def publish_control(self, event: ControlEvent) -> None:
        if not self._connected:
            self.metrics.broker_publish_failures.inc()
            return
        self._enqueue(self._control, encode(event))

    def _enqueue(self, channel: bytes, payload: bytes) -> None:
        try:
            self._send.send_nowait((channel, payload))
        except trio.WouldBlock:
            self.metrics.broker_publish_failures.inc()

    def watch(self, thread_id: UUID) -> None:
        if thread_id not in self._watched:
            self._watched.add(thread_id)
            self._changed.set()

    def unwatch(self, thread_id: UUID) -> None:
        if thread_id in self._watched:
            self._watched.discard(thread_id)
            self._changed.set()

    # --- the connection task ---------------------------------------------------------------------

    async def run(
        self, sink: BrokerSink, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Stay connected until cancelled. Starts at once, connected or not: a hub must serve
        its own sockets while Redis is down."""
        task_status.started()
        backoff = BACKOFF_MIN_S
        while True:
            connections_before = self.connections
            try:
                reason = await self._connected_session(sink)
                was_connected = self.connections > connections_before
            finally:
                self._connected = False
                self.client = None
                self._drain_queue()
            if was_connected or (self.connections == 0 and backoff == BACKOFF_MIN_S):
                log.warning("broker: Redis at %s unavailable (%s)", redact_url(self.url), reason)
            # A connection that had come up starts the backoff over; repeated failures to
            # connect double it, up to the maximum.
            backoff = BACKOFF_MIN_S if was_connected else min(BACKOFF_MAX_S, backoff * 2)
            await trio.sleep(random.uniform(0, backoff))  # noqa: S311 (jitter, not a secret)

    async def _connected_session(self, sink: BrokerSink) -> str:
        """Connect, subscribe and serve until the connection fails; why it ended. Cancellation
        (shutdown) passes through: what coredis raises while its connection is torn down under
        it is the same failure, and is not reported over it."""
        reason = "the subscription ended"
        try:
            async with coredis.Redis.from_url(
                self.url,
                retry_policy=NoRetryPolicy(),
                connect_timeout=CONNECT_TIMEOUT_S,
                stream_timeout=PING_TIMEOUT_S,
            ) as client:
                with trio.fail_after(CONNECT_TIMEOUT_S):
                    await client.ping()
                async with client.pubsub(
                    retry_policy=NoRetryPolicy(), ignore_subscribe_messages=True
                ) as pubsub:
                    with trio.fail_after(CONNECT_TIMEOUT_S):
                        await pubsub.subscribe(self._control)
                    self.client = client
                    self._connected = True
                    self.connections += 1
                    if self.connections > 1:
                        self.metrics.broker_reconnects.inc()
                        log.info("broker: Redis at %s reachable again", redact_url(self.url))
                    try:
                        async with trio.open_nursery() as nursery:
                            nursery.start_soon(self._read, pubsub, sink)
                            nursery.start_soon(self._reconcile, pubsub, sink)
                            nursery.start_soon(self._publish_loop, client)
                            nursery.start_soon(self._ping_loop, client)
                    finally:
                        # Before the client closes: nothing may use it while it does.
                        self.client = None
                        self._connected = False
        except* _CONNECTION_FAILURES as group:
            reason = _first_message(group)
        return reason

    async def _read(self, pubsub: coredis.patterns.pubsub.PubSub[bytes], sink: BrokerSink) -> None:
        prefix_size = len(self._thread_prefix)
        async for message in pubsub:
            if message["type"] != "message":
                continue
            channel = message["channel"]
            payload = message["data"]
            assert isinstance(channel, bytes) and isinstance(payload, bytes)
            try:
                if channel == self._control:
                    control = decode_control_event(payload)
                    if control.origin != self.node_id:
                        sink.control_event(control)
                    continue
                event = decode_thread_event(payload)
                if event.origin != self.node_id:
                    sink.thread_event(UUID(channel[prefix_size:].decode()), event)
            except (msgspec.DecodeError, ValueError):
                log.warning("broker: dropped an event on %r that no hub node wrote", channel)
        raise SubscriptionEnded("the subscription ended")

    async def _reconcile(
        self, pubsub: coredis.patterns.pubsub.PubSub[bytes], sink: BrokerSink
    ) -> None:
        """Make the subscribed threads the watched ones; every thread subscribed (the first
        time after a connect: all of them) is reported once Redis confirmed it."""
        subscribed: set[UUID] = set()
        while True:
            self._changed = trio.Event()
            wanted = set(self._watched)
            added = list(wanted - subscribed)
            removed = list(subscribed - wanted)
            for start in range(0, len(removed), SUBSCRIBE_BATCH):
                batch = removed[start : start + SUBSCRIBE_BATCH]
                with trio.fail_after(CONNECT_TIMEOUT_S):
                    await pubsub.unsubscribe(*(self.channel(t) for t in batch))
                subscribed.difference_update(batch)
            for start in range(0, len(added), SUBSCRIBE_BATCH):
                batch = added[start : start + SUBSCRIBE_BATCH]
                with trio.fail_after(CONNECT_TIMEOUT_S):
                    await pubsub.subscribe(*(self.channel(t) for t in batch))
                subscribed.update(batch)
                sink.resubscribed(batch)
            if not self._changed.is_set():
                await self._changed.wait()

    async def _publish_loop(self, client: coredis.Redis[bytes]) -> None:
        while True:
            first = await self._queue.receive()
            batch = [first]
            while len(batch) < PUBLISH_BATCH:
                try:
                    batch.append(self._queue.receive_nowait())
                except trio.WouldBlock:
                    break
            try:
                with trio.fail_after(PING_TIMEOUT_S):
                    if len(batch) == 1:
                        await client.publish(*first)
                    else:
                        async with client.pipeline(transaction=False) as pipe:
                            for channel, payload in batch:
                                pipe.publish(channel, payload)
            except BaseException:
                self.metrics.broker_publish_failures.inc(len(batch))
                raise

    async def _ping_loop(self, client: coredis.Redis[bytes]) -> None:
        while True:
            await trio.sleep(PING_INTERVAL_S)
            with trio.fail_after(PING_TIMEOUT_S):
                await client.ping()

    def _drain_queue(self) -> None:
        """What was queued when the connection failed is lost: count it."""
        dropped = 0
        while True:
            try:
                self._queue.receive_nowait()
            except trio.WouldBlock:
                break
            dropped += 1
        if dropped:
            self.metrics.broker_publish_failures.inc(dropped)


def _first_message(group: BaseExceptionGroup) -> str:
    for exc in _leaves(group):
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return "unknown failure"


def _leaves(exc: BaseException):
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from _leaves(inner)
    else:
        yield exc
