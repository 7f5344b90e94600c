"""One run against one server: start it, provision, drive the swarm through its phases, sample
the server, check, and gather everything into one result dict.

Phases: provision → baseline (server RSS with nothing connected) → ramp (sockets join at the
ramp rate) → hold (idle, heartbeats only; RSS per socket is measured at its end) → steps (each a
send rate for a duration, then a drain) → stop (the swarm closes its sockets and checks delivery;
the server is stopped gracefully) → the database check.

A hub target may be several nodes (`--hubs N`) sharing one database and a private Redis, each
socket on the node its plan names (`bench.load.scenario.assign_nodes`); figures are reported per
node and in total. Over each step the CPU time of each side is read from /proc: for the hub its
nodes, the PostgreSQL backends serving the run's database and Redis; for the peer its process.

Every wait is bounded, so a stuck server or swarm ends the run with a failure instead of hanging.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msgspec
import trio

from bench.load import capacity, checks, metrics, server
from bench.load.progress import RunDisplay
from bench.load.provision import name_rooms, plan_members, provision_rest
from bench.load.redis_server import RedisServer, start_redis, stop_redis
from bench.load.scenario import (
    Scenario,
    ThreadPlan,
    WorkerPlan,
    assign_nodes,
    assign_senders,
    source_addresses,
    split_threads,
)
from bench.load.system import (
    CpuGroup,
    CpuMark,
    ProcessSampler,
    ServerSampler,
    cpu_ms_between,
    postgres_backends,
    require_open_files,
)

SAMPLE_EVERY_S = 1.0
DEFAULT_HUB_MESSAGE_RATE = 10.0  # HUB_WS_MESSAGE_RATE's default, per user


class RunFailed(Exception):
    pass


@dataclass
class TargetOptions:
    kind: str  # "hub", "peer", "url"
    database: str = "sqlite"  # "sqlite" or a postgresql:// URL of a server to create a db on
    url: str | None = None  # the ws:// URL for kind "url"
    rest_url: str | None = None
    database_url: str | None = None  # for the persistence check against a given URL
    server_pid: int | None = None
    keep_database: bool = False
    hub_env: tuple[str, ...] = ()  # extra KEY=VALUE for a started hub
    hubs: int = 1  # hub nodes to start, sharing the database and a private Redis
    redis: bool = False  # start the private Redis for one node too (several nodes always do)

    @property
    def wants_redis(self) -> bool:
        return self.kind == "hub" and (self.hubs > 1 or self.redis)


class _Worker:
    def __init__(self, index: int, process: trio.Process, result_path: Path) -> None:
        self.index = index
        self.process = process
        self.result_path = result_path
        self.progress: dict[str, Any] = {}
        self.ramped = trio.Event()
        self.open_when_ramped = 0
        self.done = trio.Event()
        self.steps_done: set[int] = set()
        self.step_outcomes: dict[int, dict[str, Any]] = {}  # its step_done events
        self.step_event = trio.Event()

    async def command(self, line: str) -> None:
        assert self.process.stdin is not None
        try:
            await self.process.stdin.send_all(line.encode() + b"\n")
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise RunFailed(
                f"swarm process {self.index} has died (exit {self.process.returncode}); "
                f"see {self.result_path.with_suffix('').with_suffix('.log')}"
            ) from None

    async def read_events(self) -> None:
        assert self.process.stdout is not None
        buffer = b""
        async for chunk in self.process.stdout:
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                if not line.strip():
                    continue
                event = json.loads(line)
                kind = event.get("ev")
                if kind == "progress":
                    self.progress = event
                elif kind == "ramped":
                    self.open_when_ramped = event["open"]
                    self.ramped.set()
                elif kind == "step_done":
                    self.steps_done.add(event["step"])
                    self.step_outcomes[event["step"]] = event
                    self.step_event.set()
                    self.step_event = trio.Event()
                elif kind == "done":
                    self.done.set()
        # stdout closed: the process is gone; wake anyone waiting
        self.ramped.set()
        self.done.set()
        self.step_event.set()


async def run_once(
    scenario: Scenario,
    options: TargetOptions,
    run_dir: Path,
    *,
    show_progress: bool,
) -> dict[str, Any]:
    """Run `scenario` against one target; returns the result (figures, series, checks)."""
    per_process = math.ceil(scenario.sockets / scenario.swarm_processes)
    require_open_files(per_process, "the swarm")
    if options.kind == "hub":
        require_open_files(math.ceil(scenario.sockets / options.hubs), "the hub")

    target, hub_notes = await trio.to_thread.run_sync(_start_target, scenario, options, run_dir)
    label = target.kind if len(target.nodes) == 1 else f"{target.kind}, {len(target.nodes)} nodes"
    result: dict[str, Any] = {
        "target": target.kind,
        "ws_url": target.ws_url,
        "hub_settings": hub_notes,
        "backend": _backend(target.database_url),
        "database_name": _database_name(target.database_url),
        "hubs": len(target.nodes) if target.kind == "hub" else None,
    }
    try:
        with RunDisplay(label, enabled=show_progress) as display:
            await _drive(scenario, options, target, run_dir, display, result)
    finally:
        statuses = await trio.to_thread.run_sync(server.stop_nodes, target.nodes)
        result["server_exit_status"] = statuses[0]
        for node, status in zip(result.get("nodes", []), statuses, strict=False):
            node["exit_status"] = status
        if target.redis is not None:
            redis_status = await trio.to_thread.run_sync(stop_redis, target.redis)
            result["redis"] = _redis_summary(target.redis, redis_status)
    if target.database_url:
        stored = await trio.to_thread.run_sync(
            checks.stored_messages, target.database_url, list(result["acked"])
        )
        result["checks"].insert(0, checks.check_persisted(result["acked"], stored).to_json())
        if (
            options.kind == "hub"
            and target.database_url.startswith("postgres")
            and not (options.keep_database)
        ):
            await trio.to_thread.run_sync(server.drop_postgres_database, target.database_url)
            result["database_dropped"] = True
    else:
        result["checks"].insert(
            0,
            checks.Check(
                "every acknowledged message stored exactly once",
                None,
                "not applicable: no database to check (the peer persists nothing)"
                if target.kind == "peer"
                else "skipped: pass --database-url to check the target's database",
            ).to_json(),
        )
    result["capacity"] = capacity.capacity(
        result["steps"], result["checks"], result.pop("unattributed_faults")
    )
    del result["acked"]
    return result


def _backend(database_url: str | None) -> str | None:
    if database_url is None:
        return None
    return "postgresql" if database_url.startswith("postgres") else "sqlite"


def _database_name(database_url: str | None) -> str | None:
    if database_url is None or not database_url.startswith("postgres"):
        return None
    return urlsplit(database_url).path.lstrip("/")


def _redis_summary(redis: RedisServer, exit_status: int | None) -> dict[str, Any]:
    return {
        "url": redis.url,
        "prefix": redis.prefix,
        "pid": redis.pid,
        "port": redis.port,
        "exit_status": exit_status,
        "log": str(redis.log_path),
    }


def _start_target(
    scenario: Scenario, options: TargetOptions, run_dir: Path
) -> tuple[server.Target, dict[str, str]]:
    if options.kind == "peer":
        return server.start_peer(run_dir / "peer.log"), {}
    if options.kind == "url":
        assert options.url is not None
        node = server.Node(
            name="url", ws_url=options.url, rest_url=options.rest_url, pid=options.server_pid
        )
        return (
            server.Target(
                kind="url",
                nodes=[node],
                database_url=options.database_url,
                env={k: v for k, v in os.environ.items() if k.startswith("HUB_")},
            ),
            {},
        )
    redis = None
    database_url = None
    try:
        if options.wants_redis:
            redis = start_redis(
                server.free_port(), f"bench-{secrets.token_hex(4)}", run_dir / "redis.log"
            )
        if options.database == "sqlite":
            # A fresh file every run, even when --out names a directory used before.
            for stale in run_dir.glob("hub.db*"):
                stale.unlink()
            database_url = f"sqlite:///{run_dir / 'hub.db'}"
        else:
            database_url = server.create_postgres_database(options.database)
        env = server.hub_settings_env(database_url, run_dir / "var")
        notes = _raised_settings(scenario, options)
        env.update(notes)
        envs = server.node_envs(env, options.hubs, run_dir, redis)
        if options.hubs == 1:
            logs = [run_dir / "hub.log"]
        else:
            logs = [run_dir / f"hub-node-{i}.log" for i in range(options.hubs)]
        nodes = server.start_hubs(envs, logs)
    except BaseException:
        if redis is not None:
            stop_redis(redis)
        if database_url is not None and _database_name(database_url) and not options.keep_database:
            server.drop_postgres_database(database_url)
        raise
    target = server.Target(kind="hub", nodes=nodes, database_url=database_url, env=env, redis=redis)
    return target, notes


def _raised_settings(scenario: Scenario, options: TargetOptions) -> dict[str, str]:
    """The hub's limits are sized for real users; raise only those the scenario must exceed, and
    say so in the result (with --hub-env's own)."""
    notes: dict[str, str] = {}
    per_node = math.ceil(scenario.sockets / options.hubs)
    if per_node > 10_000:
        notes["HUB_WS_MAX_CONNECTIONS"] = str(per_node + 100)
    per_sender = max(step.rate for step in scenario.steps) / scenario.sender_count
    if per_sender > DEFAULT_HUB_MESSAGE_RATE * 0.8:
        notes["HUB_WS_MESSAGE_RATE"] = str(math.ceil(per_sender * 2))
        notes["HUB_WS_MESSAGE_BURST"] = str(math.ceil(per_sender * 6))
    for item in options.hub_env:
        key, _, value = item.partition("=")
        notes[key.strip()] = value.strip()
    return notes


def _server_part(kind: str) -> str:
    """The name under which the server's own processes' CPU is reported: hub, peer or server."""
    return "server" if kind == "url" else kind


def _cpu_groups(target: server.Target) -> dict[str, CpuGroup]:
    """What counts as each side's CPU: the hub's nodes, the PostgreSQL backends serving its
    database (none for SQLite, which runs inside the hub) and its Redis; the peer's process."""
    pids = target.pids
    if not pids:
        return {}  # a given URL without --server-pid: nothing to read
    groups = {_server_part(target.kind): CpuGroup("server", lambda: pids)}
    database = _database_name(target.database_url)
    if target.kind == "hub" and database is not None:
        groups["postgresql"] = CpuGroup("postgresql", lambda: postgres_backends(database))
    if target.redis is not None:
        redis_pid = target.redis.pid
        groups["redis"] = CpuGroup("redis", lambda: [redis_pid])
    return groups


async def _drive(
    scenario: Scenario,
    options: TargetOptions,
    target: server.Target,
    run_dir: Path,
    display: RunDisplay,
    result: dict[str, Any],
) -> None:
    # --- provision ---------------------------------------------------------------------------
    display.phase("provisioning")
    threads = plan_members(scenario, target.env if target.kind != "peer" else None)
    started = time.monotonic()
    if target.rest_url:
        done = 0
        display.bar("threads provisioned", scenario.threads)

        def one_done() -> None:
            nonlocal done
            done += 1

        async with trio.open_nursery() as nursery:

            async def show() -> None:
                while True:
                    display.update("threads provisioned", done)
                    await trio.sleep(0.25)

            nursery.start_soon(show)
            await trio.to_thread.run_sync(
                lambda: provision_rest(target.rest_url, threads, on_thread_done=one_done)
            )
            nursery.cancel_scope.cancel()
        display.update("threads provisioned", done)
        result["provisioning"] = {"via": "rest", "seconds": round(time.monotonic() - started, 1)}
    else:
        name_rooms(threads)
        result["provisioning"] = {"via": "none (rooms named by the swarm)", "seconds": 0.0}
    assign_senders(threads, scenario.sender_count)
    assign_nodes(threads, len(target.nodes))

    # --- baseline ----------------------------------------------------------------------------
    server_sampler = ServerSampler.of(target.pids) if target.pids else None
    cpu_groups = _cpu_groups(target)
    baseline_rss: list[int] = [0] * len(target.nodes)
    if server_sampler is not None:
        await trio.sleep(1.0)
        server_sampler.sample()
        baseline_rss = [node.rss_now() for node in server_sampler.nodes]

    # --- swarm -------------------------------------------------------------------------------
    parts = split_threads(threads, scenario.swarm_processes)
    addresses = source_addresses(scenario.address_count)
    workers: list[_Worker] = []
    swarm_samplers: list[ProcessSampler] = []
    origin = time.monotonic()
    marks: dict[str, float] = {}
    steps_at: list[dict[str, float]] = []
    cpu_marks: list[tuple[dict[str, CpuMark], dict[str, CpuMark]]] = []
    hold_rss: list[int] = [0] * len(target.nodes)
    sockets_at_hold = 0
    async with trio.open_nursery() as nursery:
        for index, part in enumerate(parts):
            plan = WorkerPlan(
                index=index,
                ws_urls=[node.ws_url for node in target.nodes],
                threads=part,
                steps=list(scenario.steps),
                ramp_rate=scenario.ramp_rate * len(part) / len(threads),
                total_senders=scenario.sender_count,
                message_bytes=scenario.message_bytes,
                drain_s=scenario.drain_s,
                source_addresses=addresses,
                connect_timeout_s=scenario.connect_timeout_s,
                sender_echo=target.kind != "peer",
                client=scenario.client,
            )
            plan_path = run_dir / f"{target.kind}-swarm-{index}.plan.json"
            plan_path.write_text(json.dumps(asdict(plan)))
            result_path = run_dir / f"{target.kind}-swarm-{index}.result.json"
            log = (run_dir / f"{target.kind}-swarm-{index}.log").open("wb")
            process = await trio.lowlevel.open_process(
                [sys.executable, "-m", "bench.load.swarm", str(plan_path), str(result_path)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
            )
            worker = _Worker(index, process, result_path)
            workers.append(worker)
            swarm_samplers.append(ProcessSampler(process.pid))
            nursery.start_soon(worker.read_events)

        recipients_to_others = scenario.members_per_thread - 1
        total_sends = sum(round(s.rate * s.duration_s) for s in scenario.steps)
        display.bar("sockets joined", scenario.sockets)
        display.bar("messages acked", total_sends)
        display.bar("copies delivered", total_sends * recipients_to_others)

        async def sample_and_show() -> None:
            while True:
                server_now = server_sampler.sample() if server_sampler else None
                for sampler in swarm_samplers:
                    sampler.sample()
                for group in cpu_groups.values():
                    group.sample()
                total = _sum_progress(workers)
                display.update("sockets joined", total["open"])
                display.update("messages acked", total["acked"], f"sent {total['sent']}")
                display.update("copies delivered", total["delivered"])
                note = f"errors {total['errors']}  drops {total['drops']}"
                if server_now is not None:
                    note += (
                        f"  server cpu {server_now.cpu_percent:.0f}%"
                        f"  rss {server_now.rss_bytes / 2**20:.0f} MiB"
                    )
                display.status(note)
                await trio.sleep(SAMPLE_EVERY_S)

        nursery.start_soon(sample_and_show)

        # --- ramp ---
        display.phase("ramping up")
        marks["ramp_start"] = time.monotonic()
        ramp_limit = scenario.sockets / scenario.ramp_rate + scenario.connect_timeout_s + 60
        with trio.move_on_after(ramp_limit) as scope:
            for worker in workers:
                await worker.ramped.wait()
        if scope.cancelled_caught:
            raise RunFailed(f"the swarm did not finish connecting within {ramp_limit:.0f}s")
        marks["ramp_end"] = time.monotonic()

        # --- hold ---
        if scenario.hold_s:
            display.phase(f"holding {scenario.hold_s:g}s")
            await trio.sleep(scenario.hold_s)
        if server_sampler is not None:
            hold_rss = [node.rss_now() for node in server_sampler.nodes]
        # The count each swarm process reported when it finished ramping, less any dropped since.
        sockets_at_hold = sum(w.open_when_ramped for w in workers) - _sum_progress(workers)["drops"]
        marks["hold_end"] = time.monotonic()

        # --- steps ---
        for index, step in enumerate(scenario.steps):
            display.phase(f"step {index + 1}/{len(scenario.steps)}: {step.rate:g} msg/s")
            cpu_start = {part: group.mark() for part, group in cpu_groups.items()}
            step_start = time.monotonic()
            for worker in workers:
                await worker.command(f"step {index}")
            limit = step.duration_s + scenario.drain_s + 60
            with trio.move_on_after(limit) as scope:
                for worker in workers:
                    while index not in worker.steps_done and not worker.done.is_set():
                        await worker.step_event.wait()
            if scope.cancelled_caught:
                raise RunFailed(f"step {index} did not finish within {limit:.0f}s")
            steps_at.append({"start": step_start, "end": time.monotonic()})
            cpu_marks.append((cpu_start, {part: g.mark() for part, g in cpu_groups.items()}))
            if scenario.sweep and _over_bound(workers, index):
                break

        # --- stop ---
        display.phase("closing sockets and checking")
        for worker in workers:
            await worker.command("stop")
        with trio.move_on_after(120) as scope:
            for worker in workers:
                await worker.done.wait()
                await worker.process.wait()
        if scope.cancelled_caught:
            raise RunFailed("the swarm did not stop within 120s")
        for sampler in swarm_samplers:
            sampler.sample()
        nursery.cancel_scope.cancel()
    marks["end"] = time.monotonic()

    _gather(
        scenario,
        target,
        threads,
        workers,
        result,
        origin=origin,
        marks=marks,
        steps_at=steps_at,
        cpu_marks=cpu_marks,
        server_sampler=server_sampler,
        swarm_samplers=swarm_samplers,
        baseline_rss=baseline_rss,
        hold_rss=hold_rss,
        sockets_at_hold=sockets_at_hold,
    )


def _over_bound(workers: list[_Worker], index: int) -> bool:
    """Whether a sweep stops after step `index`: some swarm process did not drain it, or saw its
    delivery p99 over the bound (the run's p99 merges every process's samples; any process over
    it is enough to stop, since capacity is decided at the first step over the bound)."""
    for worker in workers:
        outcome = worker.step_outcomes.get(index)
        if outcome is None or not outcome["drained"]:
            return True
        p99 = outcome["deliver_p99_ms"]
        if outcome["offered"] and (p99 is None or p99 > capacity.BOUND_P99_MS):
            return True
    return False


def _sum_progress(workers: list[_Worker]) -> dict[str, int]:
    keys = ("open", "sent", "acked", "delivered", "errors", "drops", "connect_failed")
    return {k: sum(int(w.progress.get(k, 0)) for w in workers) for k in keys}


def _gather(
    scenario: Scenario,
    target: server.Target,
    threads: list[ThreadPlan],
    workers: list[_Worker],
    result: dict[str, Any],
    *,
    origin: float,
    marks: dict[str, float],
    steps_at: list[dict[str, float]],
    cpu_marks: list[tuple[dict[str, CpuMark], dict[str, CpuMark]]],
    server_sampler: ServerSampler | None,
    swarm_samplers: list[ProcessSampler],
    baseline_rss: list[int],
    hold_rss: list[int],
    sockets_at_hold: int,
) -> None:
    outputs = []
    for worker in workers:
        if not worker.result_path.exists():
            raise RunFailed(
                f"swarm process {worker.index} wrote no result (exit {worker.process.returncode});"
                f" see its log beside the plan"
            )
        outputs.append(msgspec.json.decode(worker.result_path.read_bytes()))

    connects = [c for o in outputs for c in metrics.connects(o["connects"])]
    deliveries = [d for o in outputs for d in metrics.deliveries(o["deliveries"])]
    acks = [a for o in outputs for a in metrics.acks(o["acks"])]
    open_events = [e for o in outputs for e in o["open_events"]]
    errors: dict[str, int] = {}
    for output in outputs:
        for code, count in output["errors"].items():
            errors[code] = errors.get(code, 0) + count
    counters: dict[str, int] = {}
    for output in outputs:
        for key, value in output["counters"].items():
            if isinstance(value, int):
                counters[key] = counters.get(key, 0) + value
    drops = [d for o in outputs for d in o["drops"]]
    delivery = _merge_delivery([o["delivery"] for o in outputs])
    acked = {t: [tuple(x) for x in v] for o in outputs for t, v in o["acked"].items()}

    recipients = scenario.members_per_thread - 1
    result["scenario"] = scenario.to_json()
    result["phases_s"] = {k: round(v - origin, 3) for k, v in marks.items()}
    result["steps_at_s"] = [
        {"start": round(s["start"] - origin, 3), "end": round(s["end"] - origin, 3)}
        for s in steps_at
    ]
    result["connect"] = metrics.summarize_ms(c.duration for c in connects)
    drops_by_step, drops_outside = _drops_by_step([d["at"] for d in drops], steps_at)
    result["steps"] = []
    for i, step in enumerate(scenario.steps):
        summary = metrics.step_summary(i, step.rate, step.duration_s, deliveries, acks, recipients)
        ran = i < len(steps_at)
        swarm_steps = [x for o in outputs for x in o["steps"] if x["step"] == i]
        summary["ran"] = ran
        summary["offered"] = sum(x["offered"] for x in swarm_steps)
        summary["sent"] = sum(x["sent"] for x in swarm_steps)
        if ran and cpu_marks[i][0]:
            window_s = steps_at[i]["end"] - steps_at[i]["start"]
            summary["cpu"] = _cpu_figures(*cpu_marks[i], window_s, summary["delivered"])
        summary["verdict"] = capacity.step_verdict(
            summary,
            ran=ran,
            drained=len(swarm_steps) == len(outputs) and all(x["drained"] for x in swarm_steps),
            offered=summary["offered"],
            sent=summary["sent"],
            failed_sends=sum(x["failed_sends"] for x in swarm_steps),
            faults=delivery["by_step"].get(str(i), {}),
            drops=drops_by_step[i] if ran else 0,
        )
        result["steps"].append(summary)
    result["unattributed_faults"] = (
        sum(delivery["by_step"].get("-1", {}).values())
        + delivery["content_conflicts"]
        + drops_outside
    )
    result["cpu"] = None
    if cpu_marks and cpu_marks[0][0]:
        ran_steps = [s for s in result["steps"] if s["ran"]]
        result["cpu"] = _cpu_figures(
            cpu_marks[0][0],
            cpu_marks[-1][1],
            steps_at[-1]["end"] - steps_at[0]["start"],
            sum(s["delivered"] for s in ran_steps),
        )
    result["counters"] = counters
    result["errors"] = errors
    result["drops"] = drops[:100]
    result["acked"] = acked
    per_socket = (sum(hold_rss) - sum(baseline_rss)) / sockets_at_hold if sockets_at_hold else 0
    result["memory"] = {
        "baseline_rss_mib": round(sum(baseline_rss) / 2**20, 1),
        "rss_with_sockets_mib": round(sum(hold_rss) / 2**20, 1),
        "sockets": sockets_at_hold,
        "rss_per_socket_kib": round(per_socket / 1024, 1) if sockets_at_hold else None,
    }
    result["nodes"] = [
        _node_figures(
            i,
            node,
            _server_part(target.kind),
            threads,
            connects,
            deliveries,
            acks,
            cpu_marks,
            server_sampler.nodes[i] if server_sampler else None,
            baseline_rss[i],
            hold_rss[i],
        )
        for i, node in enumerate(target.nodes)
    ]
    result["series"] = {
        "per_second": metrics.per_second(deliveries, origin),
        "open_sockets": metrics.open_sockets_series(open_events, origin),
        "server": _series(server_sampler.samples if server_sampler else [], origin),
        "swarm": [
            [(round(s.at - origin, 2), round(s.cpu_percent, 1), s.rss_bytes) for s in x.samples]
            for x in swarm_samplers
        ],
    }
    if server_sampler is not None and len(server_sampler.nodes) > 1:
        result["series"]["nodes"] = [_series(n.samples, origin) for n in server_sampler.nodes]
    server_cpu = [s.cpu_percent for s in (server_sampler.samples if server_sampler else [])]
    result["server_cpu_percent_max"] = round(max(server_cpu), 1) if server_cpu else None
    swarm_cpu = [s.cpu_percent for x in swarm_samplers for s in x.samples]
    result["swarm_cpu_percent_max"] = round(max(swarm_cpu), 1) if swarm_cpu else None
    result["delivery"] = delivery
    result["checks"] = [
        checks.check_connected(scenario.sockets, counters.get("connect_failed", 0), errors),
        checks.check_no_drops(drops),
        checks.check_answered(
            counters.get("sent", 0),
            counters.get("acked", 0),
            counters.get("failed_sends", 0),
            counters.get("unanswered_sends", 0),
            counters.get("backlog_skips", 0),
        ),
        checks.check_delivered(delivery),
    ]
    result["checks"] = [c.to_json() for c in result["checks"]]


def _merge_delivery(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The swarm processes' delivery checks as one: counts summed, examples and faults by step
    gathered."""
    merged: dict[str, Any] = {"examples": [], "by_step": {}}
    for part in parts:
        for key, value in part.items():
            if key == "examples":
                merged["examples"].extend(value)
            elif key == "by_step":
                for step, faults in value.items():
                    mine = merged["by_step"].setdefault(step, {})
                    for kind, count in faults.items():
                        mine[kind] = mine.get(kind, 0) + count
            else:
                merged[key] = merged.get(key, 0) + value
    return merged


def _drops_by_step(times: list[float], steps_at: list[dict[str, float]]) -> tuple[list[int], int]:
    """Unexpected drops per step (from its start to the next step's start, the last step's
    until the end), and those before the first step, which no step owns."""
    counts = [0] * len(steps_at)
    outside = 0
    for at in times:
        owner = None
        for i, span in enumerate(steps_at):
            if at >= span["start"]:
                owner = i
        if owner is None:
            outside += 1
        else:
            counts[owner] += 1
    return counts, outside


def _cpu_figures(
    start: dict[str, CpuMark], end: dict[str, CpuMark], window_s: float, copies: int
) -> dict[str, Any]:
    figures = metrics.cpu_figures(
        {part: cpu_ms_between(start[part], end[part]) for part in start}, window_s, copies
    )
    figures["processes_seen"] = {part: len(end[part].last) for part in end}
    return figures


def _node_figures(
    index: int,
    node: server.Node,
    part: str,
    threads: list[ThreadPlan],
    connects: list[metrics.Connect],
    deliveries: list[metrics.Delivery],
    acks: list[metrics.Ack],
    cpu_marks: list[tuple[dict[str, CpuMark], dict[str, CpuMark]]],
    sampler: ProcessSampler | None,
    baseline_rss: int,
    hold_rss: int,
) -> dict[str, Any]:
    """One node's share: its sockets and senders as planned, what joined, what its senders got
    acknowledged, what its sockets received (and how much of it from other nodes), its CPU over
    the sending window and its memory."""
    members = [m for t in threads for m in t.members if m.node == index]
    joined = [c.duration for c in connects if c.node == index]
    received = [d for d in deliveries if d.receiver_node == index and d.step >= 0]
    acked = [a.latency for a in acks if a.node == index]
    cpu_ms = None
    if cpu_marks and part in cpu_marks[0][0] and node.pid is not None:
        start, end = cpu_marks[0][0][part], cpu_marks[-1][1][part]
        cpu_ms = round(cpu_ms_between(start, end, [node.pid]), 1)
    cpu = [s.cpu_percent for s in sampler.samples] if sampler else []
    return {
        "node": index,
        "name": node.name,
        "reported_node_id": node.reported_id,
        "ws_url": node.ws_url,
        "pid": node.pid,
        "log": str(node.log_path) if node.log_path else None,
        "sockets": len(members),
        "senders": sum(1 for m in members if m.sender),
        "joined": len(joined),
        "connect": metrics.summarize_ms(joined),
        "acked": len(acked),
        "ack_latency": metrics.summarize_ms(acked),
        "copies_received": len(received),
        "copies_from_other_nodes": sum(1 for d in received if d.sender_node != index),
        "deliver_latency": metrics.summarize_ms(d.latency for d in received),
        "cpu_ms_sending": cpu_ms,
        "cpu_percent_max": round(max(cpu), 1) if cpu else None,
        "memory": {
            "baseline_rss_mib": round(baseline_rss / 2**20, 1),
            "rss_with_sockets_mib": round(hold_rss / 2**20, 1),
            "rss_per_socket_kib": round((hold_rss - baseline_rss) / len(joined) / 1024, 1)
            if joined and hold_rss
            else None,
        },
    }


def _series(samples: list[Any], origin: float) -> list[tuple[float, float, int, int]]:
    return [(round(s.at - origin, 2), round(s.cpu_percent, 1), s.rss_bytes, s.fds) for s in samples]
