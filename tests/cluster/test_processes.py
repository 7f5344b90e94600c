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

from hub import client as hub_client
from hub.storage import open_storage
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
async def nodes(settings, redis_server, tmp_path, count: int = 2) -> AsyncIterator[list[Node]]:
    started: list[Node] = []
    try:
        for i in range(count):
            started.append(
                await start_node(f"node-{i}", settings.database_url, redis_server.url, tmp_path)
            )
        yield started
    finally:
        for node in started:
            await trio.to_thread.run_sync(node.stop)


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
        async with (
            hub_client.connect(a.ws_url, alice.token) as on_a,
            hub_client.connect(b.ws_url, bob.token) as on_b,
        ):
            await on_a.join(thread.id)
            await on_b.join(thread.id)
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
        async with (
            hub_client.connect(a.ws_url, alice.token) as on_a,
            hub_client.connect(b.ws_url, bob.token) as on_b,
        ):
            await on_a.join(thread.id)
            await on_b.join(thread.id)
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
