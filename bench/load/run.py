"""One run against one server: start it, provision, drive the swarm through its phases, sample
the server, check, and gather everything into one result dict.

Phases: provision → baseline (server RSS with nothing connected) → ramp (sockets join at the
ramp rate) → hold (idle, heartbeats only; RSS per socket is measured at its end) → steps (each a
send rate for a duration, then a drain) → stop (the swarm closes its sockets and checks delivery;
the server is stopped gracefully) → the database check.

Every wait is bounded, so a stuck server or swarm ends the run with a failure instead of hanging.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import msgspec
import trio

from bench.load import checks, metrics, server
from bench.load.progress import RunDisplay
from bench.load.provision import name_rooms, plan_members, provision_rest
from bench.load.scenario import (
    Scenario,
    WorkerPlan,
    assign_senders,
    source_addresses,
    split_threads,
)
from bench.load.system import ProcessSampler, require_open_files

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
        require_open_files(scenario.sockets, "the hub")

    target, hub_notes = await trio.to_thread.run_sync(_start_target, scenario, options, run_dir)
    label = target.kind
    result: dict[str, Any] = {
        "target": target.kind,
        "ws_url": target.ws_url,
        "hub_settings": hub_notes,
        "backend": _backend(target.database_url),
    }
    try:
        with RunDisplay(label, enabled=show_progress) as display:
            await _drive(scenario, options, target, run_dir, display, result)
    finally:
        status = await trio.to_thread.run_sync(server.stop, target)
        result["server_exit_status"] = status
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
    del result["acked"]
    return result


def _backend(database_url: str | None) -> str | None:
    if database_url is None:
        return None
    return "postgresql" if database_url.startswith("postgres") else "sqlite"


def _start_target(
    scenario: Scenario, options: TargetOptions, run_dir: Path
) -> tuple[server.Target, dict[str, str]]:
    if options.kind == "peer":
        return server.start_peer(run_dir / "peer.log"), {}
    if options.kind == "url":
        assert options.url is not None
        return (
            server.Target(
                kind="url",
                ws_url=options.url,
                rest_url=options.rest_url,
                pid=options.server_pid,
                database_url=options.database_url,
                env={k: v for k, v in os.environ.items() if k.startswith("HUB_")},
            ),
            {},
        )
    if options.database == "sqlite":
        # A fresh file every run, even when --out names a directory used before.
        for stale in run_dir.glob("hub.db*"):
            stale.unlink()
        database_url = f"sqlite:///{run_dir / 'hub.db'}"
    else:
        database_url = server.create_postgres_database(options.database)
    env = server.hub_settings_env(database_url, run_dir / "var")
    notes: dict[str, str] = {}
    # The hub's limits are sized for real users; raise only those the scenario must exceed, and
    # say so in the result.
    if scenario.sockets > 10_000:
        notes["HUB_WS_MAX_CONNECTIONS"] = str(scenario.sockets + 100)
    per_sender = max(step.rate for step in scenario.steps) / scenario.sender_count
    if per_sender > DEFAULT_HUB_MESSAGE_RATE * 0.8:
        notes["HUB_WS_MESSAGE_RATE"] = str(math.ceil(per_sender * 2))
        notes["HUB_WS_MESSAGE_BURST"] = str(math.ceil(per_sender * 6))
    for item in options.hub_env:
        key, _, value = item.partition("=")
        notes[key.strip()] = value.strip()
    env.update(notes)
    return server.start_hub(env, run_dir / "hub.log"), notes


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

    # --- baseline ----------------------------------------------------------------------------
    server_sampler = ProcessSampler(target.pid) if target.pid else None
    baseline_rss = 0
    if server_sampler is not None:
        await trio.sleep(1.0)
        server_sampler.sample()
        baseline_rss = server_sampler.rss_now()

    # --- swarm -------------------------------------------------------------------------------
    parts = split_threads(threads, scenario.swarm_processes)
    addresses = source_addresses(scenario.address_count)
    workers: list[_Worker] = []
    swarm_samplers: list[ProcessSampler] = []
    origin = time.monotonic()
    marks: dict[str, float] = {}
    steps_at: list[dict[str, float]] = []
    hold_rss = 0
    sockets_at_hold = 0
    async with trio.open_nursery() as nursery:
        for index, part in enumerate(parts):
            plan = WorkerPlan(
                index=index,
                ws_url=target.ws_url,
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
            hold_rss = server_sampler.rss_now()
        # The count each swarm process reported when it finished ramping, less any dropped since.
        sockets_at_hold = sum(w.open_when_ramped for w in workers) - _sum_progress(workers)["drops"]
        marks["hold_end"] = time.monotonic()

        # --- steps ---
        for index, step in enumerate(scenario.steps):
            display.phase(f"step {index + 1}/{len(scenario.steps)}: {step.rate:g} msg/s")
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
        workers,
        result,
        origin=origin,
        marks=marks,
        steps_at=steps_at,
        server_sampler=server_sampler,
        swarm_samplers=swarm_samplers,
        baseline_rss=baseline_rss,
        hold_rss=hold_rss,
        sockets_at_hold=sockets_at_hold,
    )


def _sum_progress(workers: list[_Worker]) -> dict[str, int]:
    keys = ("open", "sent", "acked", "delivered", "errors", "drops", "connect_failed")
    return {k: sum(int(w.progress.get(k, 0)) for w in workers) for k in keys}


def _gather(
    scenario: Scenario,
    workers: list[_Worker],
    result: dict[str, Any],
    *,
    origin: float,
    marks: dict[str, float],
    steps_at: list[dict[str, float]],
    server_sampler: ProcessSampler | None,
    swarm_samplers: list[ProcessSampler],
    baseline_rss: int,
    hold_rss: int,
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

    connects = [d for o in outputs for _, d in metrics.pairs(o["connects"])]
    deliveries = [d for o in outputs for d in metrics.triples(o["deliveries"])]
    acks = [a for o in outputs for a in metrics.triples(o["acks"])]
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
    delivery: dict[str, Any] = {"examples": []}
    for output in outputs:
        for key, value in output["delivery"].items():
            if key == "examples":
                delivery["examples"].extend(value)
            else:
                delivery[key] = delivery.get(key, 0) + value
    acked = {t: [tuple(x) for x in v] for o in outputs for t, v in o["acked"].items()}

    recipients = scenario.members_per_thread - 1
    result["scenario"] = scenario.to_json()
    result["phases_s"] = {k: round(v - origin, 3) for k, v in marks.items()}
    result["steps_at_s"] = [
        {"start": round(s["start"] - origin, 3), "end": round(s["end"] - origin, 3)}
        for s in steps_at
    ]
    result["connect"] = metrics.summarize_ms(connects)
    result["steps"] = [
        metrics.step_summary(i, s.rate, s.duration_s, deliveries, acks, recipients)
        for i, s in enumerate(scenario.steps)
    ]
    result["counters"] = counters
    result["errors"] = errors
    result["drops"] = drops[:100]
    result["acked"] = acked
    per_socket = (hold_rss - baseline_rss) / sockets_at_hold if sockets_at_hold else math.nan
    result["memory"] = {
        "baseline_rss_mib": round(baseline_rss / 2**20, 1),
        "rss_with_sockets_mib": round(hold_rss / 2**20, 1),
        "sockets": sockets_at_hold,
        "rss_per_socket_kib": round(per_socket / 1024, 1) if sockets_at_hold else None,
    }
    result["series"] = {
        "per_second": metrics.per_second(deliveries, origin),
        "open_sockets": metrics.open_sockets_series(open_events, origin),
        "server": [
            (round(s.at - origin, 2), round(s.cpu_percent, 1), s.rss_bytes, s.fds)
            for s in (server_sampler.samples if server_sampler else [])
        ],
        "swarm": [
            [(round(s.at - origin, 2), round(s.cpu_percent, 1), s.rss_bytes) for s in x.samples]
            for x in swarm_samplers
        ],
    }
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
