"""Real `hub serve` processes sharing one PostgreSQL database and a Redis server of the test's
own: what a client on one node sees of what happens on another, and what survives Redis dying."""

from __future__ import annotations

import contextlib
import json
import urllib.request
from collections.abc import AsyncIterator

import pytest
import trio
import trio_asyncio
import trio_websocket

from hub import client as hub_client
from hub import protocol
from hub.storage import open_storage
from tests.cluster.conftest import joined
from tests.cluster.nodes import SECRETS, Node, start_node
from tests.factories import add_member, new_group, new_member, new_thread
from tests.realtime.conftest import realtime_settings

pytestmark = pytest.mark.postgres


@pytest.fixture
def settings(postgres_url, tmp_path):
    return realtime_settings(postgres_url, tmp_path / "var", **SECRETS)


@contextlib.asynccontextmanager
async def world(settings) -> AsyncIterator[tuple]:
    """Alice and Bob of two organizations in one thread, written to the shared database."""
    async with trio_asyncio.open_loop(), open_storage(settings) as storage:
        alice = await new_member(storage, settings, name="Alice Planner")
        bob = await new_member(storage, settings, name="Bob Photographer")
        group = await new_group(storage, alice)
        await add_member(storage, group, bob, invited_by=alice)
        thread = await new_thread(storage, group, alice)
        yield alice, bob, group, thread


@contextlib.asynccontextmanager
async def nodes_with(
    settings, redis_server, tmp_path, count: int = 2, **overrides: str
) -> AsyncIterator[list[Node]]:
    """`count` hub serve nodes on the test's database and Redis, stopped at the end."""
    started: list[Node] = []
    try:
        for i in range(count):
            started.append(
                await start_node(
                    f"node-{i}", settings.database_url, redis_server.url, tmp_path, **overrides
                )
            )
        yield started
    finally:
        for node in started:
            await trio.to_thread.run_sync(node.stop)


def nodes(settings, redis_server, tmp_path, count: int = 2):
    return nodes_with(settings, redis_server, tmp_path, count)


async def refused_close(node: Node, token: str) -> int:
    """The close code a node answers a new socket of the token's user with."""
    async with trio_websocket.open_websocket_url(node.ws_url) as ws:
        await ws.send_message(json.dumps({"type": "auth", "token": token}))
        with trio.fail_after(10):
            try:
                while True:
                    await ws.get_message()
            except trio_websocket.ConnectionClosed as closed:
                return closed.reason.code


def readiness(node: Node) -> dict:
    url = node.rest_url.split("/api/")[0] + "/readyz"
    with urllib.request.urlopen(url, timeout=5) as answer:
        return json.load(answer)


async def until_ready(node: Node, status: str) -> dict:
    with trio.fail_after(20):
        while True:
            body = await trio.to_thread.run_sync(readiness, node)
            if body["status"] == status:
                return body
            await trio.sleep(0.1)


async def test_sends_interleaved_over_two_processes_reach_both_once_in_order(
    settings, redis_server, tmp_path
):
    async with (
        world(settings) as (alice, bob, _, thread),
        nodes(settings, redis_server, tmp_path) as (a, b),
    ):
        await until_ready(a, "ready")
        await until_ready(b, "ready")
        async with joined((a, alice), (b, bob), thread=thread) as (on_a, on_b):
            async with trio.open_nursery() as nursery:
                for client, name in ((on_a, "alice"), (on_b, "bob")):

                    async def send_all(client=client, name=name) -> None:
                        for i in range(15):
                            await client.send(thread.id, f"{name} {i}")

                    nursery.start_soon(send_all)
            seen_a = await on_a.drain(thread.id, 30)
            seen_b = await on_b.drain(thread.id, 30)

    assert [m.seq for m in seen_a] == list(range(1, 31))
    assert [m.seq for m in seen_b] == list(range(1, 31))
    assert [m.body for m in seen_a] == [m.body for m in seen_b]
    assert sorted(m.body for m in seen_a) == sorted(
        [f"alice {i}" for i in range(15)] + [f"bob {i}" for i in range(15)]
    )


async def test_redis_killed_mid_stream_loses_nothing_and_delivery_resumes(
    settings, redis_server, tmp_path
):
    async with (
        world(settings) as (alice, bob, _, thread),
        nodes(settings, redis_server, tmp_path) as (a, b),
    ):
        await until_ready(b, "ready")
        async with joined((a, alice), (b, bob), thread=thread) as (on_a, on_b):
            for i in range(3):
                await on_a.send(thread.id, f"before {i}")
            await on_b.drain(thread.id, 3)

            redis_server.kill()
            degraded = await until_ready(b, "degraded")
            during = [await on_a.send(thread.id, f"during {i}") for i in range(3)]
            seen_during = await on_b.drain(thread.id, during[-1].message.seq)

            redis_server.start()
            await until_ready(a, "ready")
            await until_ready(b, "ready")
            after = [await on_b.send(thread.id, f"after {i}") for i in range(3)]
            seen_after = await on_a.drain(thread.id, after[-1].message.seq)

    assert degraded["broker"] == "redis" and "Redis is unreachable" in degraded["degraded"][0]
    assert [m.seq for m in seen_during] == [4, 5, 6]
    assert [m.body for m in seen_during] == ["during 0", "during 1", "during 2"]
    assert [m.seq for m in seen_after] == list(range(1, 10))


async def test_a_node_killed_with_9_has_its_users_announced_gone_within_the_ttl(
    settings, redis_server, tmp_path
):
    async with (
        world(settings) as (alice, bob, _, thread),
        nodes(settings, redis_server, tmp_path) as (a, b),
    ):
        await until_ready(a, "ready")
        await until_ready(b, "ready")
        async with hub_client.connect(a.ws_url, alice.token) as on_a:
            await on_a.join(thread.id)
            on_b = hub_client.HubClient(b.ws_url, bob.token, backoff_s=30, backoff_max_s=30)
            async with trio.open_nursery() as nursery:
                await nursery.start(on_b.run)
                ack = await on_b.join(thread.id)
                joined = await on_a.next_event(protocol.UserJoined)
                await trio.to_thread.run_sync(b.kill)
                # No close frame, no leave: only the TTL (2 s here) can tell node A.
                left = await on_a.next_event(protocol.UserLeft, timeout_s=20)
                nursery.cancel_scope.cancel()

    assert alice.user_id in {entry.user_id for entry in ack.presence or []}
    assert joined.user.user_id == bob.user_id
    assert left.user_id == bob.user_id


async def test_a_users_connection_limit_holds_over_all_nodes(settings, redis_server, tmp_path):
    async with (
        world(settings) as (alice, _, _, _),
        nodes_with(settings, redis_server, tmp_path, HUB_WS_MAX_CONNECTIONS_PER_USER="2") as (a, b),
    ):
        await until_ready(a, "ready")
        await until_ready(b, "ready")
        # One socket on each node: each node alone counts 1 of 2; only the cluster counts 2.
        async with (
            hub_client.connect(a.ws_url, alice.token) as first,
            hub_client.connect(b.ws_url, alice.token) as second,
        ):
            await first.ping()
            await second.ping()
            refusals = [await refused_close(node, alice.token) for node in (a, b)]

    assert refusals == [protocol.CLOSE_TOO_MANY_CONNECTIONS] * 2


async def test_a_users_message_budget_holds_over_all_nodes(settings, redis_server, tmp_path):
    async with (
        world(settings) as (alice, _, _, thread),
        nodes_with(
            settings,
            redis_server,
            tmp_path,
            HUB_WS_MESSAGE_RATE="0.01",
            HUB_WS_MESSAGE_BURST="4",
        ) as (a, b),
    ):
        await until_ready(a, "ready")
        await until_ready(b, "ready")
        async with joined((a, alice), (b, alice), thread=thread) as (on_a, on_b):
            for i in range(4):
                await (on_a if i % 2 == 0 else on_b).send(thread.id, f"within budget {i}")
            with pytest.raises(hub_client.HubClientError) as on_node_a:
                await on_a.send(thread.id, "one too many")
            with pytest.raises(hub_client.HubClientError) as on_node_b:
                await on_b.send(thread.id, "one too many")

    assert on_node_a.value.code == "rate_limited" and on_node_b.value.code == "rate_limited"


async def test_presence_reconverges_after_redis_restarts(settings, redis_server, tmp_path):
    async with (
        world(settings) as (alice, bob, _, thread),
        nodes(settings, redis_server, tmp_path) as (a, b),
    ):
        await until_ready(a, "ready")
        await until_ready(b, "ready")
        async with hub_client.connect(a.ws_url, alice.token) as on_a:
            await on_a.join(thread.id)
            redis_server.kill()
            await until_ready(a, "degraded")
            await until_ready(b, "degraded")
            # Bob joins on node B while Redis is down: node A cannot hear of it yet.
            async with hub_client.connect(b.ws_url, bob.token) as on_b:
                await on_b.join(thread.id)
                redis_server.start()
                joined = await on_a.next_event(protocol.UserJoined, timeout_s=20)
                sent = await on_b.send(thread.id, "back together")
                seen = await on_a.drain(thread.id, sent.message.seq)

    assert joined.user.user_id == bob.user_id
    assert [m.body for m in seen] == ["back together"]
