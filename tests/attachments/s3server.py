"""moto's standalone S3 server, as a process of its own on a free port: the S3 store's tests
talk HTTP to a real endpoint, the way the hub talks to MinIO or AWS, not to a patched client."""

from __future__ import annotations

import contextlib
import http.client
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.redis_server import free_port


@dataclass
class MotoServer:
    port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start it and return once it answers HTTP; RuntimeError (so the tests fail, never
        skip) if it exits or stays silent."""
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        # moto imports a great deal before it listens: seconds on a busy machine.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            if self._answers():
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(
            f"moto's S3 server on port {self.port} did not start; its output:\n"
            + self.log_path.read_text(errors="replace")[-4000:]
        )

    def _answers(self) -> bool:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
        with contextlib.suppress(OSError, http.client.HTTPException):
            try:
                connection.request("GET", "/")
                connection.getresponse().read()
                return True
            finally:
                connection.close()
        return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None


def start_moto(directory: Path) -> MotoServer:
    server = MotoServer(free_port(), directory / "moto.log")
    server.start()
    return server
