"""The server under test: a hub started as `python -m hub serve` (one node or several), the peer,
or a given URL.

The bench starts its own server in a separate process (never in the swarm's: the open-files limit
is per process, and the swarm needs one core to itself). A started hub gets a fresh database — a
SQLite file in the run's directory, or a new database on the given PostgreSQL server, dropped
afterwards — and secrets made for the run, which the bench also uses to mint tokens.

Several nodes (`--hubs N`) share those secrets and that one database (PostgreSQL), and a private
Redis (`bench.load.redis_server`) as their broker; each has its own ports, `HUB_NODE_ID=node-<i>`
and `var/` directory. Node 0 starts alone, since it migrates the fresh database; the others then
start together.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from bench.load.redis_server import RedisServer

WS_PATH = "/api/vendor-connections/websocket"
REST_BASE = "/api/vendor-connections"


class ServerFailed(Exception):
    pass


@dataclass
class Node:
    """One server process the swarm connects to: a hub node, the peer, or a given URL."""

    name: str  # the hub's HUB_NODE_ID, "peer" or "url"
    ws_url: str
    rest_url: str | None = None  # http://host:port/api/vendor-connections (hub only)
    pid: int | None = None
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    env: dict[str, str] = field(default_factory=dict)  # this node's own HUB_* settings
    reported_id: str | None = None  # the node id its /metrics names, once started


@dataclass
class Target:
    """Where the swarm connects, and what the bench knows about the servers behind it."""

    kind: str  # "hub", "peer" or "url"
    nodes: list[Node]
    database_url: str | None = None  # for the persistence check
    env: dict[str, str] = field(default_factory=dict)  # the HUB_* settings every node shares
    redis: RedisServer | None = None

    @property
    def ws_url(self) -> str:
        return self.nodes[0].ws_url

    @property
    def rest_url(self) -> str | None:
        return self.nodes[0].rest_url

    @property
    def pids(self) -> list[int]:
        return [node.pid for node in self.nodes if node.pid is not None]


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """`count` distinct ports free now: every probe stays bound until all are chosen."""
    probes = []
    try:
        for _ in range(count):
            probe = socket.socket()
            probes.append(probe)
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]
    finally:
        for probe in probes:
            probe.close()


def hub_settings_env(database_url: str, var_dir: Path) -> dict[str, str]:
    """The HUB_* environment of a bench-started hub: fresh secrets, fresh ports, quiet logs."""
    http_port, ws_port = free_ports(2)
    return {
        "HUB_ENV": "development",
        "HUB_DATABASE_URL": database_url,
        "HUB_VAR_DIR": str(var_dir),
        "HUB_JWT_SECRET": secrets.token_urlsafe(48),
        "HUB_ENCRYPTION_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "HUB_HTTP_HOST": "127.0.0.1",
        "HUB_HTTP_PORT": str(http_port),
        "HUB_WS_HOST": "127.0.0.1",
        "HUB_WS_PORT": str(ws_port),
        "HUB_LOG_LEVEL": "WARNING",
    }


def node_envs(
    shared: Mapping[str, str], count: int, run_dir: Path, redis: RedisServer | None
) -> list[dict[str, str]]:
    """Each node's own settings over the shared ones: its ports, its node id, its `var/`, and
    the run's Redis. One node keeps the shared ports and `var/` (a run with one hub looks as it
    always did)."""
    ports = free_ports(2 * count)
    envs = []
    for index in range(count):
        env = dict(shared)
        env["HUB_NODE_ID"] = f"node-{index}"
        if count > 1:
            env["HUB_HTTP_PORT"] = str(ports[2 * index])
            env["HUB_WS_PORT"] = str(ports[2 * index + 1])
            env["HUB_VAR_DIR"] = str(run_dir / f"var-node-{index}")
        if redis is not None:
            env["HUB_REDIS_URL"] = redis.url
            env["HUB_REDIS_PREFIX"] = redis.prefix
        envs.append(env)
    return envs


def create_postgres_database(admin_url: str) -> str:
    """A new, empty database on the server `admin_url` names; returns its URL."""
    import asyncpg

    name = f"hub_bench_{uuid.uuid4().hex[:12]}"

    async def create() -> None:
        conn = await asyncpg.connect(admin_url, timeout=10)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(create())
    return urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))


def drop_postgres_database(database_url: str) -> None:
    import asyncpg

    parts = urlsplit(database_url)
    name = parts.path.lstrip("/")
    admin = urlunsplit(parts._replace(path="/postgres"))

    async def drop() -> None:
        conn = await asyncpg.connect(admin, timeout=10)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(drop())


def start_hubs(envs: list[dict[str, str]], log_paths: list[Path]) -> list[Node]:
    """One node per environment: node 0 first (it migrates the fresh database), then the others
    together. If one fails, those already started are stopped before the error goes up."""
    nodes = [start_hub(envs[0], log_paths[0])]
    try:
        for env, log in zip(envs[1:], log_paths[1:], strict=True):
            nodes.append(_launch_hub(env, log))
        for node in nodes[1:]:
            _wait_healthy(node)
        for node in nodes:
            node.reported_id = reported_node_id(node)
    except BaseException:
        stop_nodes(nodes)
        raise
    return nodes


def start_hub(env: Mapping[str, str], log_path: Path, timeout_s: float = 60.0) -> Node:
    """`python -m hub serve` with `env`; returns once /healthz answers 200."""
    node = _launch_hub(env, log_path)
    _wait_healthy(node, timeout_s)
    return node


def _launch_hub(env: Mapping[str, str], log_path: Path) -> Node:
    import os

    log = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "hub", "serve"],
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # a Ctrl-C at the terminal reaches the bench, which stops it
    )
    return Node(
        name=env.get("HUB_NODE_ID", "hub"),
        ws_url=f"ws://127.0.0.1:{env['HUB_WS_PORT']}{WS_PATH}",
        rest_url=f"http://127.0.0.1:{env['HUB_HTTP_PORT']}{REST_BASE}",
        pid=process.pid,
        process=process,
        log_path=log_path,
        env=dict(env),
    )


def _wait_healthy(node: Node, timeout_s: float = 60.0) -> None:
    assert node.process is not None and node.log_path is not None
    http_port = int(node.env["HUB_HTTP_PORT"])
    deadline = time.monotonic() + timeout_s
    while True:
        if node.process.poll() is not None:
            raise ServerFailed(
                f"hub {node.name} exited with {node.process.returncode}:\n{_tail(node.log_path)}"
            )
        if _healthy(http_port):
            return
        if time.monotonic() > deadline:
            node.process.kill()
            node.process.wait()
            raise ServerFailed(f"hub {node.name} did not answer /healthz in {timeout_s:g}s")
        time.sleep(0.2)


def reported_node_id(node: Node) -> str | None:
    """The node id the hub says it runs as (`hub_node_info{node=…}` on its /metrics), to show
    that each node got its own settings; None when it cannot be read."""
    if node.rest_url is None:
        return None
    parts = urlsplit(node.rest_url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=5)
    try:
        conn.request("GET", "/metrics")
        response = conn.getresponse()
        text = response.read().decode(errors="replace")
    except OSError:
        return None
    finally:
        conn.close()
    if response.status != 200:
        return None
    for line in text.splitlines():
        if line.startswith("hub_node_info{") and 'node="' in line:
            return line.split('node="', 1)[1].split('"', 1)[0]
    return None


def start_peer(log_path: Path, timeout_s: float = 30.0) -> Target:
    """The websockets broadcast peer (`python -m bench.peers`) on a free port."""
    port = free_port()
    log = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.peers", "--port", str(port)],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            raise ServerFailed(f"the peer exited with {process.returncode}:\n{_tail(log_path)}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                process.kill()
                raise ServerFailed(f"the peer did not listen in {timeout_s:g}s") from None
            time.sleep(0.1)
    node = Node(
        name="peer",
        ws_url=f"ws://127.0.0.1:{port}{WS_PATH}",
        pid=process.pid,
        process=process,
        log_path=log_path,
    )
    return Target(kind="peer", nodes=[node])


def stop_nodes(nodes: list[Node], timeout_s: float = 30.0) -> list[int | None]:
    """SIGINT to every node at once (a hub shuts down gracefully: sockets, thread actors, storage
    flush), then SIGKILL to any that takes longer than `timeout_s`. Returns the exit statuses."""
    running = [n.process for n in nodes if n.process is not None and n.process.poll() is None]
    for process in running:
        process.send_signal(signal.SIGINT)
    deadline = time.monotonic() + timeout_s
    for process in running:
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return [None if n.process is None else n.process.returncode for n in nodes]


def _healthy(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", f"{REST_BASE}/healthz")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
