"""Per-user limits over nodes: one connection limit for a user's sessions on every node, which a
dead node's sessions stop holding after the TTL, and one message budget shared by all nodes;
then what only Redis can do to the store (die, restart)."""

from __future__ import annotations

import uuid
from uuid import UUID

import coredis
import pytest
import trio

from hub.broker.errors import BrokerUnavailable
from hub.broker.limits import RedisLimits
from hub.ratelimit import Budget, RateLimiter
from tests.broker.conftest import PREFIX, SHORT_TTL_S, Backend, RedisServer, redis_client

# Refills so slowly that no token comes back during a test, however slow the machine.
NO_REFILL = Budget(rate=0.001, burst=4)


def user() -> UUID:
    return uuid.uuid4()


async def test_a_user_meets_one_connection_limit_over_two_nodes(backend: Backend):
    a, b = backend.limits("node-a"), backend.limits("node-b")
    alice = user()

    assert await a.admit_connection(alice, "s1", 3) is True
    assert await a.admit_connection(alice, "s2", 3) is True
    assert await b.admit_connection(alice, "s1", 3) is True  # the same id on another node
    assert await b.admit_connection(alice, "s4", 3) is False
    assert await a.admit_connection(alice, "s5", 3) is False


async def test_a_released_session_frees_its_place_and_a_refused_one_took_none(backend: Backend):
    a, b = backend.limits("node-a"), backend.limits("node-b")
    alice = user()
    await a.admit_connection(alice, "s1", 2)
    await b.admit_connection(alice, "s2", 2)
    assert await b.admit_connection(alice, "s3", 2) is False

    await a.release_connection(alice, "s1")

    assert await b.admit_connection(alice, "s3", 2) is True
    assert await a.admit_connection(alice, "s4", 2) is False


async def test_releasing_twice_or_an_unknown_session_changes_nothing(backend: Backend):
    a, b = backend.limits("node-a"), backend.limits("node-b")
    alice = user()
    await a.admit_connection(alice, "s1", 2)
    await b.admit_connection(alice, "s1", 2)

    await a.release_connection(alice, "s1")
    await a.release_connection(alice, "s1")
    await a.release_connection(alice, "never")

    assert await a.admit_connection(alice, "s2", 2) is True
    assert await a.admit_connection(alice, "s3", 2) is False


async def test_admitting_a_counted_session_again_counts_it_once(backend: Backend):
    a = backend.limits("node-a")
    alice = user()

    assert await a.admit_connection(alice, "s1", 2) is True
    assert await a.admit_connection(alice, "s1", 2) is True
    assert await a.admit_connection(alice, "s2", 2) is True
    assert await a.admit_connection(alice, "s1", 2) is True  # at the limit, but counted
    assert await a.admit_connection(alice, "s3", 2) is False


async def test_users_have_limits_of_their_own(backend: Backend):
    a = backend.limits("node-a")
    alice, bob = user(), user()
    await a.admit_connection(alice, "s1", 1)

    assert await a.admit_connection(bob, "s2", 1) is True
    assert await a.admit_connection(alice, "s3", 1) is False


async def test_a_dead_nodes_sessions_stop_counting_after_its_ttl(backend: Backend):
    dead = backend.limits("node-dead", ttl_s=SHORT_TTL_S)
    live = backend.limits("node-live")
    alice = user()
    # The live node's session keeps the user's count (in Redis, its key) alive throughout.
    await live.admit_connection(alice, "s0", 3)
    await dead.admit_connection(alice, "s1", 3)
    await dead.admit_connection(alice, "s2", 3)

    async def admitted() -> bool:
        return await live.admit_connection(alice, "s3", 3)

    await backend.eventually(admitted)

    assert await live.admit_connection(alice, "s4", 3) is True
    assert await live.admit_connection(alice, "s5", 3) is False


async def test_refreshed_sessions_keep_counting_past_their_ttl(backend: Backend):
    ttl_s = 1.0
    node = backend.limits("node-a", ttl_s=ttl_s)
    other = backend.limits("node-b")
    alice = user()
    await node.admit_connection(alice, "s1", 1)
    until = backend.now() + 2.5 * ttl_s

    async def ttl_outlived() -> bool:
        await node.refresh_connections([(alice, "s1")])
        assert await other.admit_connection(alice, "s2", 1) is False
        return backend.now() > until

    await backend.eventually(ttl_outlived, step_s=ttl_s / 10)


async def test_the_message_budget_is_shared_by_two_nodes(backend: Backend):
    a, b = backend.limits("node-a"), backend.limits("node-b")
    alice = user()

    taken = [await node.take_message(alice, NO_REFILL) for node in (a, b, a, b)]
    refused = [await node.take_message(alice, NO_REFILL) for node in (a, b)]

    assert [d.allowed for d in taken] == [True] * 4
    assert [d.remaining for d in taken] == [3, 2, 1, 0]
    for decision in refused:
        assert decision.allowed is False
        assert decision.limit == 4
        assert decision.remaining == 0
        assert decision.retry_after_s > 0
        assert decision.reset_s > 0


async def test_users_have_message_budgets_of_their_own(backend: Backend):
    a = backend.limits("node-a")
    alice, bob = user(), user()
    for _ in range(4):
        await a.take_message(alice, NO_REFILL)

    assert (await a.take_message(alice, NO_REFILL)).allowed is False
    assert (await a.take_message(bob, NO_REFILL)).allowed is True


async def test_a_refused_user_gets_a_token_again_once_the_bucket_refills(backend: Backend):
    a, b = backend.limits("node-a"), backend.limits("node-b")
    budget = Budget(rate=5, burst=1)
    alice = user()

    async def refused() -> bool:
        return not (await a.take_message(alice, budget)).allowed

    async def allowed() -> bool:
        return (await b.take_message(alice, budget)).allowed

    with trio.fail_after(10):
        while not await refused():
            pass
    await backend.eventually(allowed, step_s=0.05)


async def test_decisions_are_those_of_the_local_rate_limiter(backend: Backend):
    node = backend.limits("node-a")
    local = RateLimiter(NO_REFILL, clock=lambda: 0.0)
    alice = user()

    for _ in range(6):
        shared, alone = await node.take_message(alice, NO_REFILL), local.take(alice)
        assert (shared.allowed, shared.limit, shared.remaining) == (
            alone.allowed,
            alone.limit,
            alone.remaining,
        )
        # The shared bucket refills (very slowly) between calls; the local one is frozen.
        assert shared.reset_s == pytest.approx(alone.reset_s, rel=0.05)
        assert shared.retry_after_s == pytest.approx(alone.retry_after_s, rel=0.05)


# --- what only Redis does ------------------------------------------------------------------


async def test_every_limits_method_raises_broker_unavailable_when_redis_is_killed(
    redis: coredis.Redis[bytes], redis_server: RedisServer
):
    node = RedisLimits(redis, prefix=PREFIX, node_id="node-a", ttl_s=5)
    alice = user()
    await node.admit_connection(alice, "s1", 3)
    redis_server.kill()

    calls = [
        node.admit_connection(alice, "s2", 3),
        node.release_connection(alice, "s1"),
        node.refresh_connections([(alice, "s1")]),
        node.take_message(alice, NO_REFILL),
    ]
    with trio.fail_after(10):  # a guard against hanging, not a measurement
        for call in calls:
            with pytest.raises(BrokerUnavailable):
                await call


async def test_refresh_counts_again_the_sessions_a_restarted_redis_lost(
    redis: coredis.Redis[bytes], redis_server: RedisServer
):
    a = RedisLimits(redis, prefix=PREFIX, node_id="node-a", ttl_s=5)
    b = RedisLimits(redis, prefix=PREFIX, node_id="node-b", ttl_s=5)
    alice = user()
    await a.admit_connection(alice, "s1", 2)
    await a.admit_connection(alice, "s2", 2)

    await redis_server.restart()
    assert await b.admit_connection(alice, "s3", 2) is True  # Redis forgot s1 and s2
    await a.refresh_connections([(alice, "s1"), (alice, "s2")])

    assert await b.admit_connection(alice, "s4", 2) is False
    await b.release_connection(alice, "s3")
    await a.release_connection(alice, "s2")
    assert await b.admit_connection(alice, "s4", 2) is True


async def test_flushed_limit_scripts_are_loaded_again(redis: coredis.Redis[bytes]):
    node = RedisLimits(redis, prefix=PREFIX, node_id="node-a", ttl_s=5)
    alice = user()
    await node.admit_connection(alice, "s1", 1)
    await node.take_message(alice, NO_REFILL)

    await redis.script_flush()

    assert await node.admit_connection(alice, "s2", 1) is False
    await node.refresh_connections([(alice, "s1")])
    assert (await node.take_message(alice, NO_REFILL)).remaining == 2


async def test_limit_keys_are_under_the_prefix_and_expire(redis: coredis.Redis[bytes]):
    node = RedisLimits(redis, prefix=PREFIX, node_id="node-a", ttl_s=5)
    alice, bob = user(), user()
    await node.admit_connection(alice, "s1", 1)
    await node.refresh_connections([(bob, "s2")])
    await node.take_message(alice, Budget(rate=10, burst=50))

    keys = sorted(await redis.keys("*"))

    assert keys == sorted(
        [
            f"{PREFIX}:conns:{alice}".encode(),
            f"{PREFIX}:conns:{bob}".encode(),
            f"{PREFIX}:send-bucket:{alice}".encode(),
        ]
    )
    for key in keys:
        assert await redis.pttl(key) > 0


async def test_limits_follow_their_source_to_the_current_client(redis_server: RedisServer):
    current: list[coredis.Redis[bytes] | None] = [None]
    limits = RedisLimits(lambda: current[0], prefix=PREFIX, node_id="node-a", ttl_s=5)
    alice = user()

    with pytest.raises(BrokerUnavailable, match="not connected"):
        await limits.admit_connection(alice, "s1", 1)
    async with redis_client(redis_server.url) as first:
        current[0] = first
        assert await limits.admit_connection(alice, "s1", 1) is True
    current[0] = None  # the broker lost its connection and is reconnecting
    with pytest.raises(BrokerUnavailable, match="not connected"):
        await limits.take_message(alice, NO_REFILL)
    async with redis_client(redis_server.url) as second:
        current[0] = second
        assert await limits.admit_connection(alice, "s2", 1) is False
