"""Presence across nodes: first join and last leave anywhere, entries, expiry of a node that
stops refreshing, and sweeps that report each departure once; then what only Redis can do to
the store (die, hang, restart, forget its scripts)."""

from __future__ import annotations

import os
import signal
import uuid
from uuid import UUID

import coredis
import pytest
import trio

from hub.broker.errors import BrokerUnavailable
from hub.broker.presence import ClusterPresence, RedisPresence
from tests.broker.conftest import (
    LONG_TTL_S,
    PREFIX,
    SHORT_TTL_S,
    Backend,
    RedisServer,
    eventually,
    redis_client,
)

THREAD = UUID("6a0c6f5e-8f7b-4e0e-9d0c-5f1d7f1b1a01")
OTHER_THREAD = UUID("6a0c6f5e-8f7b-4e0e-9d0c-5f1d7f1b1a02")


def user() -> UUID:
    return uuid.uuid4()


async def test_the_first_join_anywhere_is_new_and_another_nodes_is_not(backend: Backend):
    a, b = backend.presence("node-a"), backend.presence("node-b")
    alice = user()

    assert await a.join(THREAD, alice, b"alice") is True
    assert await b.join(THREAD, alice, b"alice") is False
    assert await a.join(OTHER_THREAD, alice, b"alice") is True


async def test_joining_again_on_the_same_node_is_not_new_elsewhere(backend: Backend):
    a, b = backend.presence("node-a"), backend.presence("node-b")
    alice = user()
    await a.join(THREAD, alice, b"alice")

    assert await a.join(THREAD, alice, b"alice") is True  # no *other* node has her
    assert await b.join(THREAD, alice, b"alice") is False


async def test_leaving_is_last_only_when_no_other_node_has_the_user(backend: Backend):
    a, b = backend.presence("node-a"), backend.presence("node-b")
    alice = user()
    await a.join(THREAD, alice, b"alice")
    await b.join(THREAD, alice, b"alice")

    assert await a.leave(THREAD, alice) is False
    assert alice in await b.present(THREAD)
    assert await b.leave(THREAD, alice) is True
    assert await a.present(THREAD) == {}


async def test_leaving_where_the_user_never_was_says_they_are_present_nowhere(backend: Backend):
    a = backend.presence("node-a")

    assert await a.leave(THREAD, user()) is True


async def test_present_gives_every_present_users_entry_from_any_node(backend: Backend):
    a, b = backend.presence("node-a"), backend.presence("node-b")
    alice, bob = user(), user()
    await a.join(THREAD, alice, b"alice, online")
    await b.join(THREAD, bob, b"bob, away")
    await b.join(OTHER_THREAD, bob, b"bob, away")

    assert await a.present(THREAD) == {alice: b"alice, online", bob: b"bob, away"}
    assert await b.present(THREAD) == {alice: b"alice, online", bob: b"bob, away"}
    assert await a.present(OTHER_THREAD) == {bob: b"bob, away"}
    assert await a.present(uuid.uuid4()) == {}


async def test_set_entry_replaces_a_present_users_entry_and_ignores_an_absent_one(
    backend: Backend,
):
    a, b = backend.presence("node-a"), backend.presence("node-b")
    alice, bob = user(), user()
    await a.join(THREAD, alice, b"alice, online")

    await b.set_entry(THREAD, alice, b"alice, busy")
    await b.set_entry(THREAD, bob, b"bob, online")

    assert await a.present(THREAD) == {alice: b"alice, busy"}
    assert await _entry_stored(backend, THREAD, bob) is False


async def test_the_last_leave_removes_the_entry(backend: Backend):
    a = backend.presence("node-a")
    alice = user()
    await a.join(THREAD, alice, b"alice, online")
    await a.leave(THREAD, alice)

    await a.set_entry(THREAD, alice, b"alice, busy")

    assert await a.present(THREAD) == {}


async def test_a_node_that_stops_refreshing_stops_counting_after_its_ttl(backend: Backend):
    dead = backend.presence("node-dead", ttl_s=SHORT_TTL_S)
    live = backend.presence("node-live")
    alice, bob, carol = user(), user(), user()
    await dead.join(THREAD, alice, b"alice")
    await dead.join(THREAD, carol, b"carol")
    await live.join(THREAD, bob, b"bob")
    await live.join(THREAD, carol, b"carol")

    async def alice_is_gone() -> bool:
        return alice not in await live.present(THREAD)

    await backend.eventually(alice_is_gone)

    assert set(await live.present(THREAD)) == {bob, carol}
    assert await live.join(THREAD, alice, b"alice") is True


async def test_sweep_reports_each_user_gone_once_when_two_nodes_sweep(backend: Backend):
    dead = backend.presence("node-dead", ttl_s=SHORT_TTL_S)
    first, second = backend.presence("node-1"), backend.presence("node-2")
    leaving = [user() for _ in range(20)]
    staying = user()
    for member in leaving:
        await dead.join(THREAD, member, b"x")
        await dead.join(OTHER_THREAD, member, b"x")
    await dead.join(THREAD, staying, b"staying")
    await first.join(THREAD, staying, b"staying")

    async def all_lapsed() -> bool:
        return set(await first.present(THREAD)) == {staying}

    await backend.eventually(all_lapsed)
    reports: list[dict[UUID, list[UUID]]] = []

    async def sweep(node: ClusterPresence) -> None:
        reports.append(await node.sweep([THREAD, OTHER_THREAD]))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(sweep, first)
        nursery.start_soon(sweep, second)

    for thread_id in (THREAD, OTHER_THREAD):
        reported = [u for report in reports for u in report.get(thread_id, [])]
        assert sorted(reported) == sorted(leaving)
    assert await first.sweep([THREAD, OTHER_THREAD]) == {}
    assert await second.present(THREAD) == {staying: b"staying"}


async def test_a_sweep_with_nothing_expired_reports_nothing(backend: Backend):
    a = backend.presence("node-a")
    await a.join(THREAD, user(), b"x")

    assert await a.sweep([THREAD, OTHER_THREAD]) == {}


async def test_a_user_whose_last_live_node_left_is_reported_by_leave_not_by_sweep(
    backend: Backend,
):
    dead = backend.presence("node-dead", ttl_s=SHORT_TTL_S)
    live = backend.presence("node-live")
    alice = user()
    await dead.join(THREAD, alice, b"alice")
    await live.join(THREAD, alice, b"alice")

    async def left_last() -> bool:
        if await live.leave(THREAD, alice):
            return True
        await live.join(THREAD, alice, b"alice")  # the dead node still counts: try again later
        return False

    await backend.eventually(left_last)

    assert await live.sweep([THREAD]) == {}
    assert await live.present(THREAD) == {}


async def test_refresh_keeps_a_registration_alive_past_its_ttl(backend: Backend):
    ttl_s = 1.0
    node = backend.presence("node-a", ttl_s=ttl_s)
    other = backend.presence("node-b")
    alice = user()
    await node.join(THREAD, alice, b"alice")
    until = backend.now() + 2.5 * ttl_s

    async def ttl_outlived() -> bool:
        assert await node.refresh([(THREAD, alice, b"alice")]) == []
        assert alice in await other.present(THREAD)
        return backend.now() > until

    await backend.eventually(ttl_outlived, step_s=ttl_s / 10)

    assert await other.sweep([THREAD]) == {}


async def test_refresh_recreates_a_swept_registration_and_says_the_user_is_new_again(
    backend: Backend,
):
    stalled = backend.presence("node-stalled", ttl_s=SHORT_TTL_S)
    sweeper = backend.presence("node-sweeper")
    alice = user()
    await stalled.join(THREAD, alice, b"alice, online")

    async def swept() -> bool:
        return await sweeper.sweep([THREAD]) == {THREAD: [alice]}

    await backend.eventually(swept)

    assert await stalled.refresh([(THREAD, alice, b"alice, online")]) == [(THREAD, alice)]
    assert await sweeper.present(THREAD) == {alice: b"alice, online"}


async def test_refresh_recreating_a_registration_keeps_another_nodes_entry(backend: Backend):
    stalled = backend.presence("node-stalled", ttl_s=SHORT_TTL_S)
    live = backend.presence("node-live")
    alice = user()
    await stalled.join(THREAD, alice, b"alice, old")
    await live.join(THREAD, alice, b"alice, new")

    async def stalled_swept() -> bool:
        assert await live.sweep([THREAD]) == {}  # Alice stays, through the live node
        return await _registrations(backend, THREAD) == 1

    await backend.eventually(stalled_swept)

    assert await stalled.refresh([(THREAD, alice, b"alice, old")]) == []
    assert await _registrations(backend, THREAD) == 2
    assert await live.present(THREAD) == {alice: b"alice, new"}


async def _registrations(backend: Backend, thread_id: UUID) -> int:
    """How many (user, node) registrations the store holds for the thread, live or not."""
    if backend.name == "memory":
        users = backend.presence_state.expiries.get(thread_id, {})
        return sum(len(nodes) for nodes in users.values())
    return await backend.clients[0].zcard(f"{PREFIX}:presence:{thread_id}")


async def _entry_stored(backend: Backend, thread_id: UUID, user_id: UUID) -> bool:
    """Whether the store holds an entry for the user in the thread, present or not."""
    if backend.name == "memory":
        return user_id in backend.presence_state.entries.get(thread_id, {})
    key = f"{PREFIX}:presence-entry:{thread_id}"
    return bool(await backend.clients[0].hexists(key, str(user_id)))


# --- what only Redis does ------------------------------------------------------------------


async def test_every_presence_method_raises_broker_unavailable_when_redis_is_killed(
    redis: coredis.Redis[bytes], redis_server: RedisServer
):
    node = RedisPresence(redis, prefix=PREFIX, node_id="node-a", ttl_s=5)
    alice = user()
    await node.join(THREAD, alice, b"alice")
    redis_server.kill()

    calls = [
        node.join(THREAD, alice, b"alice"),
        node.leave(THREAD, alice),
        node.set_entry(THREAD, alice, b"alice, busy"),
        node.present(THREAD),
        node.refresh([(THREAD, alice, b"alice")]),
        node.sweep([THREAD]),
    ]
    with trio.fail_after(10):  # a guard against hanging, not a measurement
        for call in calls:
            with pytest.raises(BrokerUnavailable):
                await call


async def test_a_hung_redis_raises_broker_unavailable_at_the_timeout(
    redis: coredis.Redis[bytes], redis_server: RedisServer
):
    node = RedisPresence(redis, prefix=PREFIX, node_id="node-a", ttl_s=5, timeout_s=0.2)
    await node.join(THREAD, user(), b"x")
    assert redis_server.process is not None
    os.kill(redis_server.process.pid, signal.SIGSTOP)
    try:
        with trio.fail_after(10), pytest.raises(BrokerUnavailable, match="did not answer"):
            await node.present(THREAD)
    finally:
        os.kill(redis_server.process.pid, signal.SIGCONT)

    assert len(await node.present(THREAD)) == 1


async def test_a_restarted_redis_serves_again_and_refresh_restores_what_it_lost(
    redis: coredis.Redis[bytes], redis_server: RedisServer
):
    a = RedisPresence(redis, prefix=PREFIX, node_id="node-a", ttl_s=5)
    b = RedisPresence(redis, prefix=PREFIX, node_id="node-b", ttl_s=5)
    alice, bob = user(), user()
    await a.join(THREAD, alice, b"alice")
    await b.join(THREAD, bob, b"bob")

    await redis_server.restart()

    assert await a.present(THREAD) == {}
    assert await a.refresh([(THREAD, alice, b"alice")]) == [(THREAD, alice)]
    assert await b.join(THREAD, bob, b"bob") is True
    assert await b.present(THREAD) == {alice: b"alice", bob: b"bob"}
    assert await a.leave(THREAD, alice) is True
    assert await b.sweep([THREAD]) == {}


async def test_flushed_scripts_are_loaded_again(redis: coredis.Redis[bytes]):
    node = RedisPresence(redis, prefix=PREFIX, node_id="node-a", ttl_s=5)
    alice = user()
    await node.join(THREAD, alice, b"alice")

    await redis.script_flush()

    await node.set_entry(THREAD, alice, b"alice, busy")
    assert await node.present(THREAD) == {alice: b"alice, busy"}
    assert await node.refresh([(THREAD, alice, b"alice, busy")]) == []
    assert await node.sweep([THREAD]) == {}
    assert await node.leave(THREAD, alice) is True
    assert await node.join(THREAD, alice, b"alice") is True


async def test_presence_keys_are_under_the_prefix_and_expire(redis: coredis.Redis[bytes]):
    node = RedisPresence(redis, prefix=PREFIX, node_id="node-a", ttl_s=5)
    await node.join(THREAD, user(), b"x")
    await node.refresh([(OTHER_THREAD, user(), b"y")])

    keys = await redis.keys("*")

    assert len(keys) == 6
    for key in keys:
        assert key.startswith(f"{PREFIX}:presence".encode())
        assert await redis.pttl(key) > 5000


async def test_two_prefixes_on_one_redis_are_two_hubs(redis: coredis.Redis[bytes]):
    ours = RedisPresence(redis, prefix="hub-one", node_id="node-a", ttl_s=5)
    theirs = RedisPresence(redis, prefix="hub-two", node_id="node-b", ttl_s=5)
    alice = user()

    assert await ours.join(THREAD, alice, b"alice") is True
    assert await theirs.join(THREAD, alice, b"alice") is True
    assert await ours.leave(THREAD, alice) is True
    assert await theirs.present(THREAD) == {alice: b"alice"}


async def test_a_second_client_sees_the_same_presence(redis_server: RedisServer):
    async with redis_client(redis_server.url) as one, redis_client(redis_server.url) as two:
        a = RedisPresence(one, prefix=PREFIX, node_id="node-a", ttl_s=5)
        b = RedisPresence(two, prefix=PREFIX, node_id="node-b", ttl_s=5)
        alice = user()

        assert await a.join(THREAD, alice, b"alice") is True
        assert await b.join(THREAD, alice, b"alice") is False


def test_a_node_id_cannot_hold_the_field_separator():
    with pytest.raises(ValueError, match="node id"):
        RedisPresence(None, prefix=PREFIX, node_id="a|b", ttl_s=5)  # type: ignore[arg-type]


async def test_a_thread_everyone_left_leaves_no_keys_behind(redis: coredis.Redis[bytes]):
    stays = RedisPresence(redis, prefix=PREFIX, node_id="node-a", ttl_s=5)
    lapses = RedisPresence(redis, prefix=PREFIX, node_id="node-b", ttl_s=SHORT_TTL_S)
    alice, bob = user(), user()
    await stays.join(THREAD, alice, b"alice")
    await lapses.join(THREAD, bob, b"bob")
    await stays.leave(THREAD, alice)

    async def bob_swept() -> bool:
        return await stays.sweep([THREAD]) == {THREAD: [bob]}

    await eventually(bob_swept)

    assert await redis.keys("*") == set()


async def test_presence_follows_its_source_to_the_current_client(redis_server: RedisServer):
    current: list[coredis.Redis[bytes] | None] = [None]
    presence = RedisPresence(lambda: current[0], prefix=PREFIX, node_id="node-a", ttl_s=5)
    alice = user()

    with pytest.raises(BrokerUnavailable, match="not connected"):
        await presence.join(THREAD, alice, b"alice")
    async with redis_client(redis_server.url) as first:
        current[0] = first
        assert await presence.join(THREAD, alice, b"alice") is True
    current[0] = None  # the broker lost its connection and is reconnecting
    with pytest.raises(BrokerUnavailable, match="not connected"):
        await presence.present(THREAD)
    async with redis_client(redis_server.url) as second:
        current[0] = second
        assert await presence.present(THREAD) == {alice: b"alice"}


async def test_a_client_closed_under_a_call_is_unavailable_not_a_crash(redis_server):
    async with redis_client(redis_server.url) as client:
        closed = client
    presence = RedisPresence(closed, prefix=PREFIX, node_id="node-a", ttl_s=LONG_TTL_S)

    with pytest.raises(BrokerUnavailable):
        await presence.present(uuid.uuid4())
