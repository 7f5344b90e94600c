"""Real `hub serve` processes as the nodes of one hub: started on free ports with the same
database, secrets and Redis, read until their banner says where they listen, killed at the end."""

from __future__ import annotations

import base64
import os
import secrets
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import trio

SECRETS = {
    "HUB_JWT_SECRET": "cluster-secret-" + "x" * 40,
    "HUB_ENCRYPTION_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
}


@dataclass
class Node:
    node_id: str
    process: subprocess.Popen[str]
    ws_url: str = ""
    rest_url: str = ""
    banner: dict[str, str] = field(default_factory=dict)

    def kill(self) -> None:
        """kill -9: no close frames, no presence cleanup, nothing flushed."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


def _start(node_id: str, environ: dict[str, str], cwd: Path) -> Node:
    process = subprocess.Popen(
        [sys.executable, "-m", "hub", "serve"],
        cwd=cwd,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    node = Node(node_id, process)
    assert process.stdout is not None
    while True:
        line = process.stdout.readline()
        assert line, f"{node_id}: hub serve exited with {process.wait(10)} before its banner"
        name, _, value = line.strip().partition(":")
        node.banner[name.strip()] = value.strip()
        if name.strip() == "WebSocket":
            node.ws_url = value.strip()
            node.rest_url = node.banner["REST"]
            return node


async def start_node(
    node_id: str, database_url: str, redis_url: str | None, tmp_path: Path, **overrides: str
) -> Node:
    """One `hub serve` node of the test's cluster (its stdout is not read after the banner:
    it logs to stderr, which goes nowhere). Started again with the same id, it finds the var
    directory it left (a restart); without `redis_url` it is a hub of one process."""
    var_dir = tmp_path / node_id / "var"
    var_dir.mkdir(parents=True, exist_ok=True)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    environ.update(
        SECRETS,
        HUB_DATABASE_URL=database_url,
        HUB_VAR_DIR=str(var_dir),
        HUB_HTTP_PORT="0",
        HUB_WS_PORT="0",
        HUB_NODE_ID=node_id,
        HUB_REDIS_URL=redis_url or "",
        HUB_REDIS_PREFIX="cluster-test",
        HUB_WS_MESSAGE_RATE="1000",
        HUB_WS_MESSAGE_BURST="1000",
        HUB_SEQ_CHECK_S="0.5",
        HUB_PRESENCE_TTL_S="2",
        HUB_LOG_LEVEL="WARNING",
    )
    environ.update(overrides)
    return await trio.to_thread.run_sync(_start, node_id, environ, var_dir.parent)
