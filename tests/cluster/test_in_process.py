"""Nodes of one hub in this process, sharing a PostgreSQL database and one broker: the same
behaviour over the in-memory bus and over a Redis server of the test's own. What crosses: each
message once and in order whichever node sent it, lost publishes repaired from the database,
typing, receipts and presence changes, revocations; and what holds when the broker is down."""

from __future__ import annotations

from uuid import UUID

import pytest
import trio

from hub import client as hub_client
from hub import protocol
from hub.broker.events import MessageCommitted, ThreadEvent
from hub.broker.memory import MemoryBroker, MemoryBus
from hub.broker.redis import RedisBroker
from hub.storage.groups import remove_member
from tests.cluster.conftest import cluster, joined
from tests.factories import add_member, new_group, new_member, new_thread

pytestmark = pytest.mark.postgres


def brokers(kind: str, redis_url: str | None, count: int = 2, drop=None) -> list:
    """`count` brokers on one bus (memory) or one Redis; `drop` is node 0's fault hook."""
    if kind == "memory":
        bus = MemoryBus()
        return [MemoryBroker(f"node-{i}", bus, drop=drop if i == 0 else None) for i in range(count)]
    assert redis_url is not None
    return [
        RedisBroker(redis_url, prefix="t", node_id=f"node-{i}", drop=drop if i == 0 else None)
        for i in range(count)
    ]


@pytest.fixture(params=["memory", "redis"])
def kind(request) -> str:
    return request.param


@pytest.fixture
def redis_url(kind, request) -> str | None:
    if kind == "memory":
        return None
    return request.getfixturevalue("redis_server").url


async def world(node, settings):
    storage = node.storage
    alice = await new_member(storage, settings, name="Alice Planner")
    bob = await new_member(storage, settings, name="Bob Photographer")
    group = await new_group(storage, alice)
    await add_member(storage, group, bob, invited_by=alice)
    thread = await new_thread(storage, group, alice)
    return alice, bob, group, thread


async def until_connected(nodes) -> None:
    with trio.fail_after(10):
        while not all(node.supervisor.broker.connected for node in nodes):  # noqa: ASYNC110
            await trio.sleep(0.01)  # (a broker has no event for it: only tests wait on it)


async def test_interleaved_sends_on_two_nodes_reach_both_once_in_order(settings, kind, redis_url):
    async with cluster(settings, brokers(kind, redis_url)) as (a, b):
        await until_connected((a, b))
        alice, bob, _, thread = await world(a, settings)
        async with joined((a, alice), (b, bob), thread=thread) as (on_a, on_b):
            for i in range(10):
                await (on_a if i % 2 == 0 else on_b).send(thread.id, f"note {i}")
            seen_a = await on_a.drain(thread.id, 10)
            seen_b = await on_b.drain(thread.id, 10)

    assert [m.seq for m in seen_a] == list(range(1, 11))
    assert [m.seq for m in seen_b] == list(range(1, 11))
    assert [m.body for m in seen_b] == [f"note {i}" for i in range(10)]


async def test_a_dropped_publish_is_repaired_from_the_database(settings, kind, redis_url):
    def drop_second(thread_id: UUID, event: ThreadEvent) -> bool:
        return isinstance(event, MessageCommitted) and event.seq == 2

    async with cluster(settings, brokers(kind, redis_url, drop=drop_second)) as (a, b):
        await until_connected((a, b))
        alice, bob, _, thread = await world(a, settings)
        async with joined((a, alice), (b, bob), thread=thread) as (on_a, on_b):
            for i in range(4):
                await on_a.send(thread.id, f"timeline {i}")
            seen = await on_b.drain(thread.id, 4)
        repairs = b.metrics.gap_repairs._value.get()

    assert [m.seq for m in seen] == [1, 2, 3, 4]
    assert [m.body for m in seen][1] == "timeline 1"
    assert repairs >= 1


async def test_a_lost_last_message_is_still_delivered(settings, kind, redis_url):
    def drop_all_messages(thread_id: UUID, event: ThreadEvent) -> bool:
        return isinstance(event, MessageCommitted)

    async with cluster(settings, brokers(kind, redis_url, drop=drop_all_messages)) as (a, b):
        await until_connected((a, b))
        alice, bob, _, thread = await world(a, settings)
        async with joined((a, alice), (b, bob), thread=thread) as (on_a, on_b):
            sent = await on_a.send(thread.id, "the arch broke, bring the spare")
            seen = await on_b.drain(thread.id, sent.message.seq)

    assert [(m.seq, m.body) for m in seen] == [(1, "the arch broke, bring the spare")]


async def test_typing_and_receipts_and_status_cross_nodes(settings, kind, redis_url):
    async with cluster(settings, brokers(kind, redis_url)) as (a, b):
        await until_connected((a, b))
        alice, bob, _, thread = await world(a, settings)
        async with joined((a, alice), (b, bob), thread=thread) as (on_a, on_b):
            await on_b.typing(thread.id, True)
            typing = await on_a.next_event(protocol.Typing)
            sent = await on_a.send(thread.id, "florist arrives at 2")
            await on_b.drain(thread.id, sent.message.seq)
            await on_b.mark_read(thread.id, sent.message.seq)
            receipt = await on_a.next_event(protocol.ReadReceipt)
            await on_b.set_presence("away")
            status = await on_a.next_event(protocol.Presence)

    assert (typing.user_id, typing.is_typing) == (bob.user_id, True)
    assert (receipt.user_id, receipt.seq) == (bob.user_id, 1)
    assert (status.user_id, status.status) == (bob.user_id, "away")


async def test_joins_and_leaves_cross_nodes(settings, kind, redis_url):
    async with cluster(settings, brokers(kind, redis_url)) as (a, b):
        await until_connected((a, b))
        alice, bob, _, thread = await world(a, settings)
        async with hub_client.connect(a.ws_url, alice.token) as on_a:
            await on_a.join(thread.id)
            async with hub_client.connect(b.ws_url, bob.token) as on_b:
                ack = await on_b.join(thread.id)
                joined = await on_a.next_event(protocol.UserJoined)
            left = await on_a.next_event(protocol.UserLeft)

    assert alice.user_id in {entry.user_id for entry in ack.presence or []}
    assert joined.user.user_id == bob.user_id
    assert left.user_id == bob.user_id


async def test_revocation_on_one_node_ends_live_traffic_on_the_other(settings, kind, redis_url):
    async with cluster(settings, brokers(kind, redis_url)) as (a, b):
        await until_connected((a, b))
        _, bob, group, thread = await world(a, settings)
        async with hub_client.connect(b.ws_url, bob.token) as on_b:
            await on_b.join(thread.id)
            await a.supervisor.router.membership_revoked(group.id, bob.org_id)
            lost = await on_b.next_event(protocol.Error)

    assert lost.code == "not_found" and lost.thread_id == thread.id


async def test_with_the_broker_down_messages_still_cross_by_polling(settings):
    bus = MemoryBus()
    async with cluster(settings, [MemoryBroker("node-0", bus), MemoryBroker("node-1", bus)]) as (
        a,
        b,
    ):
        alice, bob, _, thread = await world(a, settings)
        async with joined((a, alice), (b, bob), thread=thread) as (on_a, on_b):
            bus.down()
            during = [await on_a.send(thread.id, f"while down {i}") for i in range(3)]
            seen_during = await on_b.drain(thread.id, during[-1].message.seq)
            bus.up()
            after = await on_b.send(thread.id, "back up")
            seen_after = await on_a.drain(thread.id, after.message.seq)
        polls = b.metrics.fallback_polls._value.get()

    assert [m.seq for m in seen_during] == [1, 2, 3]
    assert [m.seq for m in seen_after] == [1, 2, 3, 4]
    assert polls >= 1


async def test_a_revocation_decided_while_the_broker_is_down_still_ends_traffic_elsewhere(
    settings,
):
    bus = MemoryBus()
    async with cluster(settings, [MemoryBroker("node-0", bus), MemoryBroker("node-1", bus)]) as (
        a,
        b,
    ):
        _, bob, group, thread = await world(a, settings)
        async with hub_client.connect(b.ws_url, bob.token) as on_b:
            await on_b.join(thread.id)
            bus.down()
            # What DELETE /groups/{id}/members/{org} does on node A: store, then revoke.
            await a.storage.write(
                lambda now: remove_member(group_id=group.id, organization_id=bob.org_id, now=now)
            )
            await a.supervisor.router.membership_revoked(group.id, bob.org_id)
            lost = await on_b.next_event(protocol.Error)

    assert lost.code == "not_found" and lost.thread_id == thread.id


async def test_a_scrape_shows_the_broker_down_and_what_it_cost(settings):
    bus = MemoryBus()
    async with cluster(settings, [MemoryBroker("node-0", bus), MemoryBroker("node-1", bus)]) as (
        a,
        b,
    ):
        alice, bob, _, thread = await world(a, settings)
        async with joined((a, alice), (b, bob), thread=thread) as (on_a, on_b):
            bus.down()
            sent = await on_a.send(thread.id, "cake at 6")
            await on_b.drain(thread.id, sent.message.seq)
            scrape_a = a.metrics.exposition(None)[0].decode()
            scrape_b = b.metrics.exposition(None)[0].decode()
            bus.up()

    assert "hub_broker_connected 0.0" in scrape_a
    assert "hub_broker_publish_failures_total 1.0" in scrape_a  # the message's publish
    assert "hub_gap_repairs_total 1.0" in scrape_b
    assert "hub_fallback_polls_total 0.0" not in scrape_b
