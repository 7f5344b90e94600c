"""The Python client fails over between the nodes of one hub: given several URLs, it goes to the
next one when its node dies, rejoins with since_seq, and recovers from the shared database what
was sent meanwhile, exactly once and in order. Node A is a real `hub serve` process killed with
SIGKILL; node B runs in the test's process on the same database."""

from __future__ import annotations

import base64
import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from hub import client as hub_client
from hub.config import Settings
from tests.factories import add_member, new_group, new_member, new_thread
from tests.realtime.conftest import hub_for, realtime_settings

SECRETS = {
    "HUB_JWT_SECRET": "failover-secret-" + "x" * 40,
    "HUB_ENCRYPTION_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
}


@pytest.fixture
def settings(database_url: str, tmp_path) -> Settings:
    return realtime_settings(database_url, tmp_path / "var", **SECRETS)


def _start_node(settings: Settings, var_dir: Path) -> tuple[subprocess.Popen[str], str]:
    """`hub serve` on the same database and secrets; returns it and its WebSocket URL."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    environ.update(
        SECRETS,
        HUB_DATABASE_URL=settings.database_url,
        HUB_VAR_DIR=str(var_dir),
        HUB_HTTP_PORT="0",
        HUB_WS_PORT="0",
        HUB_WS_MESSAGE_RATE="1000",
        HUB_WS_MESSAGE_BURST="1000",
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "hub", "serve"],
        cwd=var_dir.parent,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    while True:
        line = process.stdout.readline()
        assert line, f"hub serve exited with {process.wait(10)} before its banner"
        name, _, value = line.strip().partition(": ")
        if name == "WebSocket":
            return process, value.strip()


async def test_a_client_whose_node_is_killed_fails_over_and_misses_nothing(settings, tmp_path):
    async with hub_for(settings) as node_b:
        storage = node_b.storage
        alice = await new_member(storage, settings, name="Alice Planner")
        bob = await new_member(storage, settings, name="Bob Photographer")
        group = await new_group(storage, alice)
        await add_member(storage, group, bob, invited_by=alice)
        thread = await new_thread(storage, group, alice)

        (tmp_path / "node-a").mkdir()
        node_a, url_a = await trio.to_thread.run_sync(
            _start_node, settings, tmp_path / "node-a" / "var"
        )
        try:
            async with (
                hub_client.connect(
                    [url_a, node_b.ws_url], alice.token, backoff_s=0.05, backoff_max_s=0.2
                ) as on_a,
                hub_client.connect(node_b.ws_url, bob.token) as on_b,
            ):
                assert on_a.url == url_a
                await on_a.join(thread.id)
                await on_b.join(thread.id)
                first = await on_a.send(thread.id, "ceremony moved to 3 pm")
                before = await on_a.drain(thread.id, first.message.seq)

                node_a.send_signal(signal.SIGKILL)
                await trio.to_thread.run_sync(node_a.wait)
                # Sent on node B while Alice's node is dead: hers must recover them.
                missed = [await on_b.send(thread.id, f"while away {i}") for i in range(3)]
                replayed = await on_a.drain(thread.id, missed[-1].message.seq)
                live = await on_b.send(thread.id, "after the failover")
                after = await on_a.drain(thread.id, live.message.seq)
        finally:
            if node_a.poll() is None:
                node_a.kill()
                node_a.wait(10)

    seqs = [m.seq for m in before + replayed + after]
    assert seqs == [1, 2, 3, 4, 5]
    assert [m.body for m in replayed] == ["while away 0", "while away 1", "while away 2"]
    assert on_a.url == node_b.ws_url and on_a.connects == 2


async def test_a_client_whose_first_node_is_down_connects_to_the_next(settings, tmp_path):
    async with hub_for(settings) as node_b:
        alice = await new_member(node_b.storage, settings)
        with trio.socket.socket() as unused:  # a port nothing listens on
            await unused.bind(("127.0.0.1", 0))
            dead = f"ws://127.0.0.1:{unused.getsockname()[1]}/api/vendor-connections/websocket"
            async with hub_client.connect([dead, node_b.ws_url], alice.token) as client:
                pong = await client.ping()

    assert pong is not None and client.url == node_b.ws_url


def test_a_client_refuses_an_empty_or_wrong_list_of_nodes():
    with pytest.raises(ValueError, match="at least one"):
        hub_client.HubClient([], "token")
    with pytest.raises(ValueError, match="http://x"):
        hub_client.HubClient(["ws://127.0.0.1:1/ws", "http://x"], "token")
