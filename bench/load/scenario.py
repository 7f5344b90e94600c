"""What a run does: the scenario knobs, and the plan that turns them into threads, members and
senders, shared by the orchestrator and the swarm workers (as JSON).

Layout: `sockets // members_per_thread` threads, one connection group each; member 0 of every
thread is the owner of the group and of its own organization, the others each own a vendor
organization invited into the group. One socket per member, each joining its one thread.
Senders are spread round-robin over threads (sender k sends in thread k mod T as member k div T),
so with senders = threads every thread has exactly one sender.

Against several hub nodes (`--hubs N`), member k of thread t connects to node (t + k) mod N:
neighbouring members of a thread are on different nodes, and the rotation by thread puts thread
t's member 0 — its sender, by default — on node t mod N, so the senders are spread as well.

A run has steps: after the ramp and the hold, each step sends at its own rate for its own
duration, then drains (waits for every ack and every copy) before the next; a saturation sweep
is a run with several steps over the same sockets. A sweep (`--sweep`) is such a run that stops
after the first step over the latency bound: capacity is decided there (`bench.load.capacity`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Step:
    rate: float  # messages per second, all senders together
    duration_s: float


@dataclass(frozen=True)
class Scenario:
    """Every knob of a run. Defaults are the CI-sized scenario's neighbourhood."""

    sockets: int = 500
    members_per_thread: int = 10
    senders: int | None = None  # None: one per thread
    steps: tuple[Step, ...] = (Step(rate=50.0, duration_s=10.0),)
    ramp_rate: float = 500.0  # new sockets per second
    hold_s: float = 0.0  # idle time with every socket joined, before sending
    message_bytes: int = 200
    drain_s: float = 15.0  # longest wait for outstanding acks and copies after a step
    swarm_processes: int = 1
    source_addresses: int = 0  # 0: one per 4,000 sockets, at least 2
    connect_timeout_s: float = 30.0
    client: str = "wire"  # the swarm's WebSocket client: "wire" or "trio-websocket"
    sweep: bool = False  # stop after the first step over the latency bound (a capacity sweep)

    @property
    def threads(self) -> int:
        return self.sockets // self.members_per_thread

    @property
    def sender_count(self) -> int:
        return self.threads if self.senders is None else self.senders

    @property
    def address_count(self) -> int:
        if self.source_addresses:
            return self.source_addresses
        return max(2, math.ceil(self.sockets / 4000))

    def validate(self) -> None:
        if self.members_per_thread < 2:
            raise ValueError("--members-per-thread must be at least 2 (someone has to listen)")
        if self.threads < 1:
            raise ValueError("--sockets must be at least --members-per-thread")
        if self.sockets % self.members_per_thread:
            raise ValueError("--sockets must be a multiple of --members-per-thread")
        if not 1 <= self.sender_count <= self.sockets:
            raise ValueError("--senders must be between 1 and --sockets")
        if self.swarm_processes < 1 or self.swarm_processes > self.threads:
            raise ValueError("--swarm-processes must be between 1 and the number of threads")
        if not 1 <= self.message_bytes <= 10_000:
            raise ValueError("--message-bytes must be between 1 and 10000 (the hub's body limit)")
        if self.address_count > 250:
            raise ValueError("--source-addresses must be at most 250 (127.0.0.2-127.0.0.251)")
        if self.client not in ("wire", "trio-websocket"):
            raise ValueError("--client must be wire or trio-websocket")
        for step in self.steps:
            if step.rate <= 0 or step.duration_s <= 0:
                raise ValueError("every --rate and --duration must be positive")

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["threads"] = self.threads
        data["senders"] = self.sender_count
        data["source_addresses"] = self.address_count
        return data


@dataclass
class Member:
    """One socket: who it is and which thread it joins."""

    user_id: str
    org_id: str
    token: str = ""
    sender: bool = False
    node: int = 0  # which of the target's nodes (its `ws_urls`) this socket connects to


@dataclass
class ThreadPlan:
    thread_id: str = ""  # filled in by provisioning (or made up, for the peer)
    group_id: str = ""
    members: list[Member] = field(default_factory=list)


@dataclass
class WorkerPlan:
    """Everything one swarm process needs, written to a JSON file it reads at start."""

    index: int
    ws_urls: list[str]  # one per node; a member connects to ws_urls[member.node]
    threads: list[ThreadPlan]
    steps: list[Step]
    ramp_rate: float
    total_senders: int
    message_bytes: int
    drain_s: float
    source_addresses: list[str]
    connect_timeout_s: float
    sender_echo: bool  # does the sender's own socket get its message back (the hub: yes)
    client: str = "wire"  # "wire" (bench.load.wire) or "trio-websocket"


def source_addresses(count: int) -> list[str]:
    """Loopback source addresses 127.0.0.2, 127.0.0.3, …: each has its own ephemeral port range,
    so the number of client sockets is never limited by ports."""
    return [f"127.0.0.{2 + i}" for i in range(count)]


def assign_senders(threads: list[ThreadPlan], senders: int) -> None:
    """Sender k is member (k div T) of thread (k mod T)."""
    count = len(threads)
    for k in range(senders):
        threads[k % count].members[k // count].sender = True


def assign_nodes(threads: list[ThreadPlan], nodes: int) -> None:
    """Member k of thread t connects to node (t + k) mod `nodes` (see the module docstring)."""
    for t, plan in enumerate(threads):
        for k, member in enumerate(plan.members):
            member.node = (t + k) % nodes


def split_threads(threads: list[ThreadPlan], parts: int) -> list[list[ThreadPlan]]:
    """Whole threads per swarm process, so every process can check its threads on its own."""
    size = math.ceil(len(threads) / parts)
    return [threads[i : i + size] for i in range(0, len(threads), size)]
