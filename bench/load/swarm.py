"""The socket swarm: one process holding its share of the sockets.

    python -m bench.load.swarm PLAN.json RESULT.json

The orchestrator (`bench.load.run`) starts one or more of these. Each reads its `WorkerPlan`,
opens its sockets at the ramp rate (bind to a loopback source address, TCP connect, WebSocket
handshake with `Authorization: Bearer`, wait for `ready`, `join_thread`, wait for the ack), then
obeys one-line commands on stdin: `step K` sends at step K's rate for its duration and drains,
`stop` closes every socket cleanly, checks what arrived and writes RESULT.json. It reports on
stdout as JSON lines: progress counters twice a second, `ramped`, `step_done`, `done`.

Why a lean client rather than `hub.client`: the swarm holds up to 10,000 sockets in one process
on one core, so per socket it keeps one task (plus trio-websocket's reader), a list of the seqs it
received and nothing else; it decodes only the fields it measures (`bench.load.frames`), and it
must see every drop as a drop rather than reconnecting and recovering as `hub.client` does.

Whole threads live in one process, so the process knows every ack of every thread its sockets
are in, and checks delivery (every copy, exactly once, in seq order) by itself.

Against several hub nodes each socket connects to the node its member names (`Member.node`), and
every sample carries the nodes involved: a delivery its sender's and its receiver's node (so
cross-node latency can be told from same-node), an ack and a connect their socket's node.
"""

from __future__ import annotations

import itertools
import json
import socket as stdlib_socket
import sys
import time
from array import array
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msgspec
import trio
from trio_websocket import (
    ConnectionClosed,
    ConnectionRejected,
    HandshakeError,
    WebSocketConnection,
    wrap_client_stream,
)

from bench.load import frames, metrics
from bench.load.scenario import Member, Step, ThreadPlan, WorkerPlan
from bench.load.wire import WireClosed, WireConnection, WireMessages, WireRejected

PROGRESS_EVERY_S = 0.5
CLOSE_CONCURRENCY = 256
SENDER_BACKLOG = 64
EXAMPLES = 5


class ThreadState:
    """What the swarm knows about one thread: its sockets and every acknowledged message."""

    __slots__ = ("acked", "delivered_cmid", "seq_conflicts", "sockets", "thread_id")

    def __init__(self, thread_id: str) -> None:
        self.thread_id = thread_id
        self.sockets: list[Socket] = []
        self.acked: dict[int, str] = {}  # seq -> client_msg_id, from acks
        self.delivered_cmid: dict[int, str] = {}  # seq -> client_msg_id, from new_message
        self.seq_conflicts = 0


class Socket:
    """One member's connection and what arrived on it."""

    __slots__ = (
        "address",
        "close_done",
        "closed_by_us",
        "connect_s",
        "drop",
        "index",
        "joined",
        "member",
        "node",
        "outbox",
        "received",
        "stream",
        "thread",
        "ws",
    )

    def __init__(self, index: int, member: Member, thread: ThreadState, address: str) -> None:
        self.index = index
        self.member = member
        self.thread = thread
        self.address = address
        self.node = member.node
        self.ws: WebSocketConnection | WireMessages | None = None
        self.stream: trio.SocketStream | None = None
        self.joined = False
        self.connect_s: float | None = None
        self.received = array("l")  # seqs of new_message frames, in arrival order
        self.drop: dict[str, Any] | None = None  # set when the server closed on us
        self.closed_by_us = False
        self.close_done: trio.Event | None = None  # set once our close handshake finished
        self.outbox: trio.MemorySendChannel[int] | None = None


class Sent:
    __slots__ = ("sent_at", "socket", "step")

    def __init__(self, socket: Socket, sent_at: float, step: int) -> None:
        self.socket = socket
        self.sent_at = sent_at
        self.step = step


class Swarm:
    def __init__(self, plan: WorkerPlan) -> None:
        self.plan = plan
        self.endpoints = [_endpoint(url) for url in plan.ws_urls]
        self.threads = [ThreadState(t.thread_id) for t in plan.threads]
        self.sockets: list[Socket] = []
        for thread_plan, state in zip(plan.threads, self.threads, strict=True):
            for member in thread_plan.members:
                address = plan.source_addresses[len(self.sockets) % len(plan.source_addresses)]
                sock = Socket(len(self.sockets), member, state, address)
                state.sockets.append(sock)
                self.sockets.append(sock)
        # Senders interleaved across threads, so consecutive sends go to different threads.
        per_thread = [[s for s in t.sockets if s.member.sender] for t in self.threads]
        self.senders = [
            row[i]
            for i in range(max(map(len, per_thread), default=0))
            for row in per_thread
            if i < len(row)
        ]
        self.body = ("Tent goes up at 3pm. " * (plan.message_bytes // 21 + 1))[: plan.message_bytes]
        self.recipients = len(plan.threads[0].members) - (0 if plan.sender_echo else 1)
        # counters
        self.open = 0
        self.connect_failed = 0
        self.connecting_done = 0
        self.sent = 0
        self.acked = 0
        self.failed_sends = 0
        self.delivered = 0  # copies to the other members
        self.echoes = 0  # copies back to the sender's own socket
        self.backlog_skips = 0
        self.failed_by_step: Counter[int] = Counter()
        self.errors: Counter[str] = Counter()
        self.pending: dict[str, Sent] = {}
        # measurements (monotonic seconds), interleaved flat arrays (widths in bench.load.metrics)
        self.connects = array("d")  # completion time, connect+auth+join duration, node
        self.deliveries = array("d")  # receive time, latency, step, sender's node, receiver's node
        self.acks = array("d")  # ack time, latency, step, node
        self.open_events = array("d")  # +t when a socket joined, -t when it went away
        self.drops: list[dict[str, Any]] = []
        self.stopping = False
        self.all_connected = trio.Event()

    # --- sockets ---------------------------------------------------------------------------------

    async def serve_socket(self, sock: Socket) -> None:
        """One socket's whole life. A failure is counted against this socket, never allowed to
        take the other sockets of the swarm down with it."""
        try:
            await self._serve_socket(sock)
        except Exception as exc:  # the one place that turns a swarm-side bug into a count
            name = type(exc).__name__
            if isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
                name = type(exc.exceptions[0]).__name__
            self.errors[f"swarm:{name}"] += 1
            if not sock.joined and sock.connect_s is None:
                self._connect_failed(sock, name)
            print(f"socket {sock.index}: {exc!r}", file=sys.stderr)

    async def _serve_socket(self, sock: Socket) -> None:
        started = time.monotonic()
        try:
            async with trio.open_nursery() as connection:
                try:
                    with trio.fail_after(self.plan.connect_timeout_s):
                        sock.ws = await self._connect(connection, sock)
                        await self._handshake_frames(sock)
                except trio.TooSlowError:
                    self._connect_failed(sock, "connect_timeout")
                    await self._abandon(sock, connection)
                    return
                except (
                    OSError,
                    HandshakeError,
                    ConnectionClosed,
                    WireClosed,
                    WireRejected,
                    trio.BrokenResourceError,
                ) as exc:
                    self._connect_failed(sock, _failure_name(exc))
                    await self._abandon(sock, connection)
                    return
                sock.connect_s = time.monotonic() - started
                sock.joined = True
                self.open += 1
                self.connects.extend((time.monotonic(), sock.connect_s, sock.node))
                self.open_events.append(time.monotonic())
                self._connecting_finished()
                if sock.member.sender:
                    send, receive = trio.open_memory_channel[int](SENDER_BACKLOG)
                    sock.outbox = send
                    connection.start_soon(self._sender, sock, receive)
                await self._receive(sock)
                if sock.close_done is not None:
                    # We are closing: trio-websocket's reader (in this nursery) must live on
                    # until the server's close frame completes the handshake.
                    with trio.move_on_after(10):
                        await sock.close_done.wait()
                connection.cancel_scope.cancel()
        finally:
            if sock.joined:
                self.open -= 1
                self.open_events.append(-time.monotonic())

    async def _connect(
        self, nursery: trio.Nursery, sock: Socket
    ) -> WebSocketConnection | WireMessages:
        host, port, resource = self.endpoints[sock.node]
        tcp = trio.socket.socket(stdlib_socket.AF_INET, stdlib_socket.SOCK_STREAM)
        try:
            await tcp.bind((sock.address, 0))
            await tcp.connect((host, port))
        except BaseException:
            tcp.close()
            raise
        stream = sock.stream = trio.SocketStream(tcp)
        if self.plan.client == "wire":
            connection = WireConnection(stream)
            headers = (
                [("Authorization", f"Bearer {sock.member.token}")] if sock.member.token else []
            )
            await connection.handshake(f"{host}:{port}", resource, headers)
            return WireMessages(connection)
        return await wrap_client_stream(
            nursery,
            stream,
            f"{host}:{port}",
            resource,
            extra_headers=(
                [(b"authorization", b"Bearer " + sock.member.token.encode())]
                if sock.member.token
                else []  # the peer authenticates no one
            ),
        )

    async def _handshake_frames(self, sock: Socket) -> None:
        """Wait for `ready`, join the thread, wait for the join's ack."""
        ws = sock.ws
        assert ws is not None
        ready = self._decode(await ws.get_message())
        if not isinstance(ready, frames.Ready):
            code = ready.code if isinstance(ready, frames.Error) else "no_ready"
            raise HandshakeError(code)
        await ws.send_message(frames.join_thread(sock.thread.thread_id, "join"))
        while True:
            frame = self._decode(await ws.get_message())
            if isinstance(frame, frames.Ack) and frame.ref == "join":
                return
            if isinstance(frame, frames.Error) and frame.ref == "join":
                raise HandshakeError(f"join_{frame.code}")
            self._handle(sock, frame)

    async def _abandon(self, sock: Socket, connection: trio.Nursery) -> None:
        """Close a socket that failed to join at once: a refused socket must not hold a file
        descriptor (or a server slot) for the rest of the run."""
        connection.cancel_scope.cancel()
        if sock.stream is not None:
            await trio.aclose_forcefully(sock.stream)
        sock.ws = sock.stream = None

    def _connect_failed(self, sock: Socket, reason: str) -> None:
        self.connect_failed += 1
        self.errors[f"connect:{reason}"] += 1
        self._connecting_finished()

    def _connecting_finished(self) -> None:
        self.connecting_done += 1
        if self.connecting_done == len(self.sockets):
            self.all_connected.set()

    async def _receive(self, sock: Socket) -> None:
        ws = sock.ws
        assert ws is not None
        try:
            while True:
                self._handle(sock, self._decode(await ws.get_message()))
        except (ConnectionClosed, WireClosed) as exc:
            if not sock.closed_by_us:
                reason = exc if isinstance(exc, WireClosed) else exc.reason
                sock.drop = {
                    "at": time.monotonic(),
                    "code": getattr(reason, "code", None),
                    "reason": getattr(reason, "reason", None),
                    "thread_id": sock.thread.thread_id,
                }
                self.drops.append(sock.drop)
                self.errors[f"disconnect:{sock.drop['code']}"] += 1

    def _decode(self, raw: str | bytes) -> Any:
        try:
            return frames.decode_server(raw)
        except msgspec.DecodeError:
            self.errors["undecodable_frame"] += 1
            return None

    def _handle(self, sock: Socket, frame: Any) -> None:
        if isinstance(frame, frames.NewMessage):
            now = time.monotonic()
            message = frame.message
            sock.received.append(message.seq)
            thread = sock.thread
            known = thread.delivered_cmid.setdefault(message.seq, message.client_msg_id)
            if known != message.client_msg_id:
                thread.seq_conflicts += 1
            record = self.pending.get(message.client_msg_id)
            if record is not None and record.socket is sock:
                self.echoes += 1
                return
            self.delivered += 1
            if record is None:
                self.deliveries.extend((now, now - message.metadata.t, -1, -1, sock.node))
            else:
                self.deliveries.extend(
                    (now, now - message.metadata.t, record.step, record.socket.node, sock.node)
                )
        elif isinstance(frame, frames.Ack):
            if frame.message is None or frame.ref is None:
                return
            now = time.monotonic()
            record = self.pending.get(frame.ref)
            if record is None:
                self.errors["ack_for_unknown_message"] += 1
                return
            thread = sock.thread
            if frame.message.seq in thread.acked:
                self.errors["ack_repeated_seq"] += 1
                return
            thread.acked[frame.message.seq] = frame.ref
            self.acked += 1
            self.acks.extend((now, now - record.sent_at, record.step, sock.node))
        elif isinstance(frame, frames.Error):
            self.errors[frame.code] += 1
            if frame.ref is not None and frame.ref in self.pending:
                self.failed_sends += 1
                self.failed_by_step[self.pending[frame.ref].step] += 1

    async def _sender(self, sock: Socket, ticks: trio.MemoryReceiveChannel[int]) -> None:
        ws = sock.ws
        assert ws is not None
        thread_id = sock.thread.thread_id
        number = 0
        async for step in ticks:
            number += 1
            client_msg_id = f"w{self.plan.index}s{sock.index}m{number}"
            sent_at = time.monotonic()
            self.pending[client_msg_id] = Sent(sock, sent_at, step)
            try:
                await ws.send_message(
                    frames.send_message(thread_id, client_msg_id, self.body, sent_at)
                )
            except (ConnectionClosed, WireClosed):
                del self.pending[client_msg_id]
                self.errors["send_on_closed_socket"] += 1
                return
            self.sent += 1

    # --- phases ----------------------------------------------------------------------------------

    async def ramp(self, nursery: trio.Nursery) -> None:
        """Start sockets at this process's share of the ramp rate; return when each is joined
        or has failed."""
        interval = 1.0 / self.plan.ramp_rate
        start = trio.current_time()
        for i, sock in enumerate(self.sockets):
            await trio.sleep_until(start + i * interval)
            nursery.start_soon(self.serve_socket, sock)
        await self.all_connected.wait()

    async def run_step(self, index: int, step: Step) -> dict[str, Any]:
        """Offer messages at this process's share of the rate (open loop: a slow ack does not
        slow the offer), then drain: wait for every ack and every copy, at most `drain_s`."""
        senders = self.senders
        share = step.rate * len(senders) / self.plan.total_senders
        total = round(share * step.duration_s)
        started = trio.current_time()
        sent_before = self.sent
        skips_before = self.backlog_skips
        not_connected = 0
        issued = 0
        while issued < total:
            due = min(total, int((trio.current_time() - started) * share) + 1)
            while issued < due:
                sock = senders[issued % len(senders)]
                issued += 1
                if sock.outbox is None or sock.drop is not None:
                    self.errors["sender_not_connected"] += 1
                    not_connected += 1
                    continue
                try:
                    sock.outbox.send_nowait(index)
                except trio.WouldBlock:
                    self.backlog_skips += 1
            await trio.sleep_until(started + issued / share)
        offered_s = trio.current_time() - started
        drained = False
        with trio.move_on_after(self.plan.drain_s):
            # Settling depends on several counters moved by thousands of tasks; polling them
            # is simpler and cheaper than signalling from every frame handler.
            while not self._settled():  # noqa: ASYNC110
                await trio.sleep(0.05)
            drained = True
        return {
            "step": index,
            "offered": total,
            "sent": self.sent - sent_before,
            "backlog_skips": self.backlog_skips - skips_before,
            "sender_not_connected": not_connected,
            "failed_sends": self.failed_by_step[index],
            "offer_s": offered_s,
            "drained": drained,
            "deliver_p99_ms": self.step_p99_ms(index),
        }

    def step_p99_ms(self, index: int) -> float | None:
        """This process's delivery p99 for one step: enough for the orchestrator to decide
        whether a sweep goes on (the run's figures merge every process's samples later)."""
        flat = self.deliveries
        width = metrics.DELIVERY_WIDTH
        latencies = sorted(flat[i + 1] for i in range(0, len(flat), width) if flat[i + 2] == index)
        return round(metrics.percentile(latencies, 99) * 1000.0, 2) if latencies else None

    def _settled(self) -> bool:
        backlog = any(
            s.outbox is not None and s.outbox.statistics().current_buffer_used for s in self.senders
        )
        copies = self.delivered + self.echoes
        return (
            not backlog
            and self.acked + self.failed_sends >= self.sent
            and copies >= self.acked * self.recipients
        )

    async def close_all(self) -> None:
        """Close every socket with 1000, a few hundred at a time, in at most 20 s."""
        self.stopping = True
        limiter = trio.CapacityLimiter(CLOSE_CONCURRENCY)

        async def close(sock: Socket) -> None:
            async with limiter:
                sock.close_done = trio.Event()
                sock.closed_by_us = True
                try:
                    if sock.ws is not None:
                        await sock.ws.aclose(1000, "bench done")
                finally:
                    sock.close_done.set()

        with trio.move_on_after(20):
            async with trio.open_nursery() as closing:
                for sock in self.sockets:
                    if sock.joined and sock.drop is None:
                        closing.start_soon(close, sock)

    # --- results ---------------------------------------------------------------------------------

    def progress(self) -> dict[str, Any]:
        return {
            "ev": "progress",
            "open": self.open,
            "connect_failed": self.connect_failed,
            "sent": self.sent,
            "acked": self.acked,
            "delivered": self.delivered,
            "echoes": self.echoes,
            "errors": sum(self.errors.values()),
            "drops": len(self.drops),
        }

    def check_delivery(self) -> dict[str, Any]:
        """Every subscriber that stayed connected got every acknowledged message of its thread
        exactly once and in seq order (its own too, when the server echoes to the sender)."""
        checked = ok = missing = duplicates = out_of_order = unexpected = 0
        conflicts = 0
        examples: list[str] = []
        # Each fault is also counted against the step its message was sent in, so that a sweep
        # can judge each rate on its own (-1: a message the swarm never sent).
        by_step: dict[int, Counter[str]] = {}

        def fault(kind: str, seqs: Iterable[int], step_of: dict[int, int]) -> None:
            for seq in seqs:
                by_step.setdefault(step_of.get(seq, -1), Counter())[kind] += 1

        for thread in self.threads:
            # By the client_msg_id acked under a seq, else the one delivered under it (a message
            # delivered but never acked is still the step's).
            step_of = {
                seq: record.step
                for seq, cmid in itertools.chain(
                    thread.delivered_cmid.items(), thread.acked.items()
                )
                if (record := self.pending.get(cmid)) is not None
            }
            acked_seqs = set(thread.acked)
            for seq, cmid in thread.delivered_cmid.items():
                if seq in thread.acked and thread.acked[seq] != cmid:
                    conflicts += 1
            conflicts += thread.seq_conflicts
            for sock in thread.sockets:
                if not sock.joined or sock.drop is not None:
                    continue
                checked += 1
                expected = acked_seqs
                if not self.plan.sender_echo:
                    expected = {
                        seq
                        for seq in acked_seqs
                        if self.pending.get(thread.acked[seq]) is None
                        or self.pending[thread.acked[seq]].socket is not sock
                    }
                got = sock.received
                got_set = set(got)
                missing_seqs = expected - got_set
                n_missing = len(missing_seqs)
                n_unexpected = len(got_set - acked_seqs)
                n_duplicates = len(got) - len(got_set)
                disordered = [b for a, b in itertools.pairwise(got) if b <= a]
                n_disorder = len(disordered)
                missing += n_missing
                unexpected += n_unexpected
                duplicates += n_duplicates
                out_of_order += n_disorder
                if n_missing or n_unexpected or n_duplicates or n_disorder:
                    fault("missing", missing_seqs, step_of)
                    fault("unacknowledged_delivered", got_set - acked_seqs, step_of)
                    repeated = Counter(got)
                    fault(
                        "duplicates",
                        (seq for seq, n in repeated.items() for _ in range(n - 1)),
                        step_of,
                    )
                    fault("out_of_order", disordered, step_of)
                    if len(examples) < EXAMPLES:
                        examples.append(
                            f"thread {thread.thread_id} user {sock.member.user_id}: "
                            f"missing {n_missing}, unexpected {n_unexpected}, "
                            f"duplicates {n_duplicates}, out of order {n_disorder}"
                        )
                else:
                    ok += 1
        return {
            "subscribers_checked": checked,
            "subscribers_ok": ok,
            "missing": missing,
            "duplicates": duplicates,
            "out_of_order": out_of_order,
            "unacknowledged_delivered": unexpected,
            "content_conflicts": conflicts,
            "examples": examples,
            "by_step": {str(step): dict(counts) for step, counts in sorted(by_step.items())},
        }

    def result(self, steps: list[dict[str, Any]]) -> dict[str, Any]:
        unanswered = len(self.pending) - self.acked - self.failed_sends
        return {
            "index": self.plan.index,
            "sockets": len(self.sockets),
            "counters": {
                **self.progress(),
                "failed_sends": self.failed_sends,
                "unanswered_sends": max(0, unanswered),
                "backlog_skips": self.backlog_skips,
            },
            "errors": dict(self.errors),
            "drops": self.drops,
            "steps": steps,
            "delivery": self.check_delivery(),
            "acked": {t.thread_id: sorted(t.acked.items()) for t in self.threads},
            "connects": list(self.connects),
            "deliveries": list(self.deliveries),
            "acks": list(self.acks),
            "open_events": list(self.open_events),
        }


def _endpoint(ws_url: str) -> tuple[str, int, str]:
    url = urlsplit(ws_url)
    return url.hostname or "127.0.0.1", url.port or 80, url.path or "/"


def _failure_name(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRejected):
        return f"handshake_{exc.status_code}"
    if isinstance(exc, WireRejected):
        return f"handshake_{exc.status}"
    if isinstance(exc, WireClosed):
        return f"closed_{exc.code}"
    if isinstance(exc, HandshakeError):
        return str(exc) or type(exc).__name__
    if isinstance(exc, ConnectionClosed):
        return f"closed_{getattr(exc.reason, 'code', None)}"
    return type(exc).__name__


def _emit(event: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


async def run(plan: WorkerPlan, result_path: Path) -> None:
    swarm = Swarm(plan)
    stdin = trio.wrap_file(sys.stdin)
    steps: list[dict[str, Any]] = []
    async with trio.open_nursery() as nursery:

        async def report() -> None:
            while True:
                _emit(swarm.progress())
                await trio.sleep(PROGRESS_EVERY_S)

        nursery.start_soon(report)
        async with trio.open_nursery() as sockets:
            await swarm.ramp(sockets)
            _emit({"ev": "ramped", "open": swarm.open})
            while True:
                command = (await stdin.readline()).split()
                if not command or command[0] == "stop":
                    break
                if command[0] == "step":
                    index = int(command[1])
                    outcome = await swarm.run_step(index, plan.steps[index])
                    steps.append(outcome)
                    _emit(
                        {
                            "ev": "step_done",
                            "step": index,
                            "offered": outcome["offered"],
                            "drained": outcome["drained"],
                            "deliver_p99_ms": outcome["deliver_p99_ms"],
                        }
                    )
            await swarm.close_all()
            sockets.cancel_scope.cancel()
        _emit(swarm.progress())
        nursery.cancel_scope.cancel()
    # Written once, after every socket is closed: nothing is left to block.
    result_path.write_bytes(msgspec.json.encode(swarm.result(steps)))  # noqa: ASYNC240
    _emit({"ev": "done"})


def load_plan(path: Path) -> WorkerPlan:
    data = json.loads(path.read_text())
    data["threads"] = [
        ThreadPlan(
            thread_id=t["thread_id"],
            group_id=t["group_id"],
            members=[Member(**m) for m in t["members"]],
        )
        for t in data["threads"]
    ]
    data["steps"] = [Step(**s) for s in data["steps"]]
    return WorkerPlan(**data)


def main() -> None:
    from bench.load.system import raise_open_files_limit
    from hub.cli import tune_runtime

    raise_open_files_limit()
    plan_path, result_path = Path(sys.argv[1]), Path(sys.argv[2])
    # Thousands of long-lived sockets: the default thresholds made the collector walk them all
    # again and again, delaying every socket's reads, as in the hub.
    tune_runtime()
    trio.run(run, load_plan(plan_path), result_path)


if __name__ == "__main__":
    main()
