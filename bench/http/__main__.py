"""REST bench: requests/s and p50/p99 latency of GET and POST /threads/{id}, 50 clients.

    python -m bench.http [--rate 500] [--clients 50] [--seconds 10] [--database-url URL]
    python -m bench.http --floor [--rate 500]   # same load, bare Quart-Trio (bench.http.floor)
    python -m bench.http --trace /tmp/run        # also /tmp/run-get.json, /tmp/run-post.json

The hub runs as its own process (`python -m hub serve`), so the load generator does not steal
its event loop; the two still share this machine's cores. Load is open-loop: each client has a
schedule of `rate / clients` requests per second and latency is measured from the scheduled
time, so a stalled server shows up as latency instead of silently lowering the offered load
(no coordinated omission). Every client is its own user on one keep-alive connection; rate
limits are raised so they measure the server, not the limiter. Each scenario also reports the
hub process's CPU per request (user + system, from /proc), which moves less than latency when
the machine's speed drifts. With `--trace`, every request's scheduled time (seconds into the
scenario) and latency (ms) are written as JSON, to tell a start-up transient or a stall from a
steady tail.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import trio

from bench.storage.__main__ import _drop_postgres, _fresh_postgres
from hub.auth import issue_token
from hub.config import load_settings

BASE = "/api/vendor-connections"


class Connection:
    """A minimal HTTP/1.1 keep-alive client: enough for JSON requests with Content-Length."""

    def __init__(self, stream: trio.SocketStream, host: str) -> None:
        self._stream = stream
        self._host = host
        self._buffer = b""

    async def request(self, method: str, path: str, token: str, body: bytes = b"") -> int:
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self._host}\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        await self._stream.send_all(head + body)
        while b"\r\n\r\n" not in self._buffer:
            await self._fill()
        header, self._buffer = self._buffer.split(b"\r\n\r\n", 1)
        lines = header.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        while len(self._buffer) < length:
            await self._fill()
        self._buffer = self._buffer[length:]
        return status

    async def _fill(self) -> None:
        chunk = await self._stream.receive_some(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        self._buffer += chunk


@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)
    scheduled: list[float] = field(default_factory=list)
    errors: dict[int, int] = field(default_factory=dict)


async def client(
    host: str,
    port: int,
    token: str,
    make_request,
    rate: float,
    seconds: float,
    offset: float,
    result: Result,
) -> None:
    stream = await trio.open_tcp_stream(host, port)
    stream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn = Connection(stream, f"{host}:{port}")
    start = trio.current_time() + offset
    interval = 1.0 / rate
    n = 0
    async with stream:
        while True:
            scheduled = start + n * interval
            if scheduled - start >= seconds:
                return
            await trio.sleep_until(scheduled)
            method, path, body = make_request(n)
            status = await conn.request(method, path, token, body)
            result.latencies.append(trio.current_time() - scheduled)
            result.scheduled.append(scheduled)
            if status >= 300:
                result.errors[status] = result.errors.get(status, 0) + 1
            n += 1


def cpu_seconds(pid: int) -> float:
    """User + system CPU the process has used so far (Linux /proc), to report CPU per request:
    a figure that, unlike latency, does not depend on whether the machine's other core is busy."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def scenario(
    name, host, port, tokens, make_request, rate, seconds, pid, trace: Path | None = None
) -> dict:
    result = Result()
    per_client = rate / len(tokens)
    cpu_before = cpu_seconds(pid)
    began = time.perf_counter()
    started = trio.current_time()
    async with trio.open_nursery() as nursery:
        for i, token in enumerate(tokens):
            offset = (i / len(tokens)) / per_client  # spread clients over one interval
            nursery.start_soon(
                client, host, port, token, make_request, per_client, seconds, offset, result
            )
    elapsed = time.perf_counter() - began
    cpu = cpu_seconds(pid) - cpu_before
    ms = [v * 1000 for v in result.latencies]
    if trace is not None:
        at = [round(s - started, 4) for s in result.scheduled]
        pairs = sorted(zip(at, (round(v, 3) for v in ms), strict=True))
        await trio.Path(trace).write_text(json.dumps(pairs))
    return {
        "scenario": name,
        "requests": len(ms),
        "req_per_s": round(len(ms) / elapsed, 1),
        "p50_ms": round(percentile(ms, 0.50), 2),
        "p99_ms": round(percentile(ms, 0.99), 2),
        "max_ms": round(max(ms), 2) if ms else None,
        "errors": result.errors,
        "hub_cpu_ms_per_request": round(1000 * cpu / len(ms), 2) if ms else None,
        "hub_cpu_percent": round(100 * cpu / elapsed, 1),
    }


async def setup(host: str, port: int, owner_token: str) -> str:
    """One group and one thread with 50 messages of history, created over REST."""
    stream = await trio.open_tcp_stream(host, port)
    conn = Connection(stream, host)

    async def post(path: str, body: dict) -> dict:
        # The bench client reads only statuses; ids are made client-side where possible.
        payload = json.dumps(body).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {owner_token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
        ).encode()
        await stream.send_all(head + payload)
        while b"\r\n\r\n" not in conn._buffer:
            await conn._fill()
        header, conn._buffer = conn._buffer.split(b"\r\n\r\n", 1)
        length = next(
            int(line.split(":", 1)[1])
            for line in header.decode().split("\r\n")
            if line.lower().startswith("content-length")
        )
        while len(conn._buffer) < length:
            await conn._fill()
        data, conn._buffer = conn._buffer[:length], conn._buffer[length:]
        return json.loads(data)

    async with stream:
        group = await post(f"{BASE}/groups", {"name": "Bench wedding"})
        thread = await post(f"{BASE}/threads", {"group_id": group["id"], "title": "Timeline"})
        for i in range(50):
            await post(f"{BASE}/threads/{thread['id']}", {"body": f"history {i}"})
    return thread["id"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def wait_ready(host: str, port: int, process: trio.Process) -> None:
    with trio.fail_after(30):
        while True:
            if process.returncode is not None:
                raise SystemExit("the hub exited during startup")
            try:
                stream = await trio.open_tcp_stream(host, port)
            except OSError:
                await trio.sleep(0.1)
                continue
            await stream.aclose()
            return


async def main(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="hub-bench-"))
    if not args.database_url:
        await run_bench(args, workdir, f"sqlite:///{workdir}/hub.db")
        return
    # A database of its own on that server, as bench.storage does: the hub's keys and tables of
    # an earlier run (or of anything else there) stay out of the way. Dropped whatever happens.
    database_url = await _fresh_postgres(args.database_url)
    try:
        await run_bench(args, workdir, database_url)
    finally:
        await _drop_postgres(args.database_url, database_url)


async def run_bench(args: argparse.Namespace, workdir: Path, database_url: str) -> None:
    host, port = "127.0.0.1", free_port()
    env = {
        **os.environ,
        "HUB_DATABASE_URL": database_url,
        "HUB_HTTP_HOST": host,
        "HUB_HTTP_PORT": str(port),
        "HUB_WS_PORT": "0",
        "HUB_JWT_SECRET": secrets.token_urlsafe(48),
        "HUB_ENCRYPTION_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "HUB_VAR_DIR": str(workdir / "var"),
        "HUB_LOG_LEVEL": "WARNING",
        **{f"HUB_RATE_{kind}_BURST": "1000000" for kind in ("READ", "WRITE", "SEND")},
        **{f"HUB_RATE_{kind}_PER_S": "1000000" for kind in ("READ", "WRITE", "SEND")},
    }
    settings = load_settings(env)
    org = uuid.uuid4()
    tokens = [
        issue_token(settings, user_id=uuid.uuid4(), org_id=org, role="owner", name=f"c{i}")
        for i in range(args.clients)
    ]
    command = [sys.executable, "-m", "hub", "serve"]
    if args.floor:
        command = [sys.executable, "-m", "bench.http.floor", "--host", host, "--port", str(port)]
    process = await trio.lowlevel.open_process(
        command,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL if args.floor else None,
    )
    try:
        await wait_ready(host, port, process)
        thread_id = await setup(host, port, tokens[0])
        # Warm up: every client's identity is upserted on its first request.
        await scenario(
            "warmup",
            host,
            port,
            tokens,
            lambda n: ("GET", f"{BASE}/threads/{thread_id}", b""),
            len(tokens),
            1,
            process.pid,
        )
        runs = [
            (
                "GET /threads/{id}",
                lambda n: ("GET", f"{BASE}/threads/{thread_id}?limit=50", b""),
            ),
            (
                "POST /threads/{id}",
                lambda n: (
                    "POST",
                    f"{BASE}/threads/{thread_id}",
                    json.dumps({"body": f"bench {n}", "client_msg_id": uuid.uuid4().hex}).encode(),
                ),
            ),
        ]
        for name, make_request in runs:
            trace = None
            if args.trace:
                trace = Path(f"{args.trace}-{name.split()[0].lower()}.json")
            figures = await scenario(
                name, host, port, tokens, make_request, args.rate, args.seconds, process.pid, trace
            )
            print(json.dumps(figures))
    finally:
        process.terminate()
        with trio.move_on_after(15):
            await process.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.http", description=__doc__)
    parser.add_argument("--rate", type=float, default=500.0, help="offered requests/s in total")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--database-url",
        help="a PostgreSQL server to run on, in a fresh database created and dropped there "
        "(default: a fresh SQLite file)",
    )
    parser.add_argument(
        "--floor",
        action="store_true",
        help="serve bare Quart-Trio with canned answers instead of the hub (bench.http.floor)",
    )
    parser.add_argument(
        "--trace",
        metavar="PREFIX",
        help="write each scenario's [scheduled s, latency ms] pairs to PREFIX-get.json and "
        "PREFIX-post.json",
    )
    trio.run(main, parser.parse_args())
