"""Fixtures for the realtime tests: a running hub, a world of two organizations sharing a thread,
and connected clients. Everything talks over real loopback sockets."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import trio
import trio_asyncio

from hub import client as hub_client
from hub.app import Running, run_hub
from hub.config import Settings
from hub.storage.records import Thread
from tests.conftest import make_settings
from tests.factories import Member, add_member, new_group, new_member, new_thread


@dataclass
class World:
    hub: Running
    settings: Settings
    alice: Member
    bob: Member
    thread: Thread


def realtime_settings(database_url: str, var_dir, **overrides: str) -> Settings:
    base = {
        "HUB_WS_MESSAGE_RATE": "1000",
        "HUB_WS_MESSAGE_BURST": "1000",
        "HUB_WS_CLOSE_TIMEOUT_S": "2",
    }
    base.update(overrides)
    return make_settings(database_url, var_dir, **base)


@pytest.fixture
def ws_overrides() -> dict[str, str]:
    """Tests override settings by redefining this fixture (or parametrizing it)."""
    return {}


@pytest.fixture
def settings(database_url: str, tmp_path, ws_overrides) -> Settings:
    return realtime_settings(database_url, tmp_path / "var", **ws_overrides)


@contextlib.asynccontextmanager
async def hub_for(settings: Settings, **overrides: str) -> AsyncIterator[Running]:
    """A running hub for the block, shut down gracefully at its end. On PostgreSQL the
    trio-asyncio loop is opened here, in the caller's context, so tests can also read the hub's
    storage directly."""
    if overrides:
        settings = dataclasses.replace(
            settings, ws_port=int(overrides.pop("HUB_WS_PORT", settings.ws_port))
        )
    async with contextlib.AsyncExitStack() as stack:
        if settings.backend == "postgres":
            await stack.enter_async_context(trio_asyncio.open_loop())
        shutdown = trio.Event()
        async with trio.open_nursery() as nursery:
            running = await nursery.start(run_hub, settings, shutdown)
            yield running
            shutdown.set()


@pytest.fixture
async def hub(settings: Settings) -> AsyncIterator[Running]:
    async with hub_for(settings) as running:
        yield running


@pytest.fixture
async def world(hub: Running, settings: Settings) -> World:
    storage = hub.storage
    alice = await new_member(storage, settings, name="Alice Planner")
    bob = await new_member(storage, settings, name="Bob Photographer")
    group = await new_group(storage, alice)
    await add_member(storage, group, bob, invited_by=alice)
    thread = await new_thread(storage, group, alice)
    return World(hub, settings, alice, bob, thread)


@pytest.fixture
async def alice(world: World) -> AsyncIterator[hub_client.HubClient]:
    async with hub_client.connect(world.hub.ws_url, world.alice.token) as client:
        yield client


@pytest.fixture
async def bob(world: World) -> AsyncIterator[hub_client.HubClient]:
    async with hub_client.connect(world.hub.ws_url, world.bob.token) as client:
        yield client
