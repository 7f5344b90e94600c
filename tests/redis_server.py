"""A redis-server of a test's own, on a free port, for every test that needs Redis: killing or
restarting it disturbs nobody (never the shared server on 6379)."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class RedisServer:
    """A redis-server of the test's own, on a free port: killing it disturbs nobody."""

    port: int
    directory: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start it and return once it answers PING (it starts empty, scripts included)."""
        options = {
            "--port": str(self.port),
            "--bind": "127.0.0.1",
            "--save": "",  # nothing on disk: a restart starts empty
            "--appendonly": "no",
            "--dir": str(self.directory),
        }
        self.process = subprocess.Popen(
            ["redis-server", *(word for option in options.items() for word in option)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn,
            ):
                conn.sendall(b"PING\r\n")
                if conn.recv(16).startswith(b"+PONG"):
                    return
            time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"redis-server on port {self.port} did not start")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    async def restart(self) -> None:
        """Kill it and start a fresh one on the same port: what Redis held, and its scripts,
        are gone."""
        self.kill()
        await trio.to_thread.run_sync(self.start)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(free_port(), tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()
