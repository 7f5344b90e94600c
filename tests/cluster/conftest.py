"""Fixtures for clusters of hub nodes sharing one PostgreSQL database: in this process on one
in-memory bus or a Redis server of the test's own, and as real `hub serve` processes."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
import trio
import trio_asyncio

from hub.app import Running, run_hub
from hub.broker.contract import Broker
from hub.config import Settings
from tests.realtime.conftest import realtime_settings


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class RedisServer:
    """A redis-server of the test's own, on a free port: killing it disturbs nobody."""

    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--bind",
                "127.0.0.1",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn,
            ):
                conn.sendall(b"PING\r\n")
                if conn.recv(16).startswith(b"+PONG"):
                    return
            time.sleep(0.05)
        raise RuntimeError(f"redis-server on port {self.port} did not start")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer(free_port())
    server.start()
    try:
        yield server
    finally:
        server.kill()


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
