"""A private Redis for one run: `redis-server` on a free port, nothing persisted, stopped at the
end of the run.

The hub's nodes share it as their broker (`HUB_REDIS_URL`), and the run names its keys and
channels (`HUB_REDIS_PREFIX=bench-<run id>`). It is never the machine's shared Redis on 6379:
other people's tests use that one, a run must start from an empty broker, and stopping the
bench's own is the cleanup. `--save ""` and `--appendonly no` keep it in memory only, so it
leaves no file behind and spends no CPU on snapshots inside the measured window.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


class RedisFailed(Exception):
    pass


@dataclass
class RedisServer:
    port: int
    prefix: str  # HUB_REDIS_PREFIX for every node of the run
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int:
        return self.process.pid


def start_redis(port: int, prefix: str, log_path: Path, timeout_s: float = 15.0) -> RedisServer:
    """`redis-server --port PORT --save "" --appendonly no` on loopback; returns once it answers
    PING."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RedisFailed(
            "redis-server is not on PATH: --hubs N > 1 and --redis start a private one "
            "(install the redis-server package)"
        )
    log = log_path.open("wb")
    process = subprocess.Popen(
        [
            binary,
            *("--port", str(port)),
            *("--bind", "127.0.0.1"),
            *("--save", ""),
            *("--appendonly", "no"),
            *("--dir", str(log_path.parent)),
        ],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # a Ctrl-C at the terminal reaches the bench, which stops it
    )
    deadline = time.monotonic() + timeout_s
    while not answers_ping(port):
        if process.poll() is not None:
            raise RedisFailed(
                f"redis-server exited with {process.returncode}; see {log_path}:\n"
                + log_path.read_text(errors="replace")[-2000:]
            )
        if time.monotonic() > deadline:
            process.kill()
            process.wait()
            raise RedisFailed(f"redis-server did not answer PING on port {port} in {timeout_s:g}s")
        time.sleep(0.05)
    return RedisServer(port=port, prefix=prefix, process=process, log_path=log_path)


def stop_redis(redis: RedisServer, timeout_s: float = 10.0) -> int | None:
    """SIGTERM (Redis exits at once; with nothing to save it writes nothing), SIGKILL after
    `timeout_s`. Returns the exit status."""
    process = redis.process
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def answers_ping(port: int) -> bool:
    """Whether a Redis answers an inline PING on 127.0.0.1:`port`."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(64).startswith(b"+PONG")
    except OSError:
        return False
