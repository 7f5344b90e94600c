"""The server under test: a hub started as `python -m hub serve`, the peer, or a given URL.

The bench starts its own server in a separate process (never in the swarm's: the open-files limit
is per process, and the swarm needs one core to itself). A started hub gets a fresh database — a
SQLite file in the run's directory, or a new database on the given PostgreSQL server, dropped
afterwards — and secrets made for the run, which the bench also uses to mint tokens.
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

WS_PATH = "/api/vendor-connections/websocket"
REST_BASE = "/api/vendor-connections"


class ServerFailed(Exception):
    pass


@dataclass
class Target:
    """Where the swarm connects, and what the bench knows about the server behind it."""

    kind: str  # "hub", "peer" or "url"
    ws_url: str
    rest_url: str | None = None  # http://host:port/api/vendor-connections (hub only)
    pid: int | None = None
    database_url: str | None = None  # for the persistence check
    env: dict[str, str] = field(default_factory=dict)  # the HUB_* settings it was given
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    dropped_database: str | None = None  # admin DSN + name, dropped when the run ends


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def hub_settings_env(database_url: str, var_dir: Path) -> dict[str, str]:
    """The HUB_* environment of a bench-started hub: fresh secrets, fresh ports, quiet logs."""
    return {
        "HUB_ENV": "development",
        "HUB_DATABASE_URL": database_url,
        "HUB_VAR_DIR": str(var_dir),
        "HUB_JWT_SECRET": secrets.token_urlsafe(48),
        "HUB_ENCRYPTION_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "HUB_HTTP_HOST": "127.0.0.1",
        "HUB_HTTP_PORT": str(free_port()),
        "HUB_WS_HOST": "127.0.0.1",
        "HUB_WS_PORT": str(free_port()),
        "HUB_LOG_LEVEL": "WARNING",
    }


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


def start_hub(env: Mapping[str, str], log_path: Path, timeout_s: float = 60.0) -> Target:
    """`python -m hub serve` with `env`; returns once /healthz answers 200."""
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
    http_port = int(env["HUB_HTTP_PORT"])
    ws_port = int(env["HUB_WS_PORT"])
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            raise ServerFailed(f"the hub exited with {process.returncode}:\n{_tail(log_path)}")
        if _healthy(http_port):
            break
        if time.monotonic() > deadline:
            process.kill()
            raise ServerFailed(f"the hub did not answer /healthz in {timeout_s:g}s")
        time.sleep(0.2)
    return Target(
        kind="hub",
        ws_url=f"ws://127.0.0.1:{ws_port}{WS_PATH}",
        rest_url=f"http://127.0.0.1:{http_port}{REST_BASE}",
        pid=process.pid,
        database_url=env["HUB_DATABASE_URL"],
        env=dict(env),
        process=process,
        log_path=log_path,
    )


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
    return Target(
        kind="peer",
        ws_url=f"ws://127.0.0.1:{port}{WS_PATH}",
        pid=process.pid,
        process=process,
        log_path=log_path,
    )


def stop(target: Target, timeout_s: float = 30.0) -> int | None:
    """SIGINT (the hub shuts down gracefully: sockets, thread actors, storage flush), then
    SIGKILL if it takes longer than `timeout_s`. Returns the exit status."""
    process = target.process
    if process is None:
        return None
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


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
