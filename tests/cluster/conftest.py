"""Fixtures for clusters of hub nodes sharing one PostgreSQL database: in this process on one
in-memory bus or a Redis server of the test's own, and as real `hub serve` processes."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import AsyncIterator

import pytest
import trio
import trio_asyncio

from hub import client as hub_client
from hub.app import Running, run_hub
from hub.broker.contract import Broker
from hub.config import Settings
from tests.realtime.conftest import realtime_settings
from tests.redis_server import RedisServer, free_port  # noqa: F401 (re-exported)


@pytest.fixture
def settings(postgres_url: str, tmp_path) -> Settings:
    """Node settings on a fresh PostgreSQL database (SQLite is one process's), with a fast
    seq check so lost publishes are found within the test's patience."""
    return realtime_settings(postgres_url, tmp_path / "var", HUB_SEQ_CHECK_S="0.5")


@contextlib.asynccontextmanager
async def cluster(settings: Settings, brokers: list[Broker | None]) -> AsyncIterator[list[Running]]:
    """One in-process node per broker (None: what the settings choose), sharing the database;
    node i is `node-i` unless its broker names it."""
    async with trio_asyncio.open_loop():
        shutdown = trio.Event()
        async with trio.open_nursery() as nursery:
            nodes = []
            for i, broker in enumerate(brokers):
                node_id = broker.node_id if broker is not None else f"node-{i}"
                node_settings = dataclasses.replace(settings, node_id=node_id)
                nodes.append(
                    await nursery.start(
                        functools.partial(run_hub, node_settings, shutdown, broker=broker)
                    )
                )
            yield nodes
            shutdown.set()


@contextlib.asynccontextmanager
async def joined(*members: tuple, thread) -> AsyncIterator[list[hub_client.HubClient]]:
    """One client per (node, member) pair, each connected to its node and joined to the thread.
    A node is anything with a `ws_url`: an in-process `Running` or a `hub serve` process."""
    async with contextlib.AsyncExitStack() as stack:
        clients = []
        for node, member in members:
            client = await stack.enter_async_context(hub_client.connect(node.ws_url, member.token))
            await client.join(thread.id)
            clients.append(client)
        yield clients
