"""What a run leaves behind: the JSON result, a PNG plot and a short printed table, with the hub
and the peer side by side and their ratios when both ran — delivered rate, p99, memory per socket,
CPU per 1,000 delivered copies and capacity — and, for a hub of several nodes, a table per node."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.load import capacity


def write_json(report: dict[str, Any], path: Path) -> None:
    """Strict JSON: a figure that could not be computed (no samples) is null, not NaN."""
    path.write_text(json.dumps(_no_nan(report), indent=1, default=str, allow_nan=False))


def _no_nan(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_no_nan(v) for v in value]
    return value


def compare(hub: dict[str, Any], peer: dict[str, Any]) -> dict[str, Any]:
    """Hub ÷ peer, step by step, for delivered msgs/s, p99 and CPU per 1,000 copies; for memory
    per socket; for CPU per 1,000 copies over the steps both ran (a sweep may stop one side
    earlier); and for capacity."""
    steps = []
    hub_ms = hub_copies = peer_ms = peer_copies = 0.0
    for mine, theirs in zip(hub["steps"], peer["steps"], strict=False):
        mine_cpu, their_cpu = mine.get("cpu"), theirs.get("cpu")
        steps.append(
            {
                "rate": mine["rate"],
                "delivered_per_s_ratio": _ratio(mine["delivered_per_s"], theirs["delivered_per_s"]),
                "p99_ratio": _ratio(
                    mine["deliver_latency"]["p99_ms"], theirs["deliver_latency"]["p99_ms"]
                ),
                "cpu_ms_per_1000_copies_ratio": _ratio(
                    mine_cpu and mine_cpu["cpu_ms_per_1000_copies"],
                    their_cpu and their_cpu["cpu_ms_per_1000_copies"],
                ),
            }
        )
        if mine_cpu and their_cpu and mine_cpu["copies"] and their_cpu["copies"]:
            hub_ms += mine_cpu["total_ms"]
            hub_copies += mine_cpu["copies"]
            peer_ms += their_cpu["total_ms"]
            peer_copies += their_cpu["copies"]
    hub_per_1000 = round(hub_ms / hub_copies * 1000, 2) if hub_copies else None
    peer_per_1000 = round(peer_ms / peer_copies * 1000, 2) if peer_copies else None
    return {
        "steps": steps,
        "rss_per_socket_ratio": _ratio(
            hub["memory"]["rss_per_socket_kib"], peer["memory"]["rss_per_socket_kib"]
        ),
        "hub_cpu_ms_per_1000_copies": hub_per_1000,
        "peer_cpu_ms_per_1000_copies": peer_per_1000,
        "cpu_ms_per_1000_copies_ratio": _ratio(hub_per_1000, peer_per_1000),
        "hub_capacity": hub["capacity"]["rate"],
        "peer_capacity": peer["capacity"]["rate"],
        **capacity.ratio(hub["capacity"], peer["capacity"]),
    }


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or not b or math.isnan(a) or math.isnan(b):
        return None
    return round(a / b, 2)


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def print_table(report: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    runs: list[dict[str, Any]] = report["runs"]
    table = Table(title="Load bench", show_lines=False)
    table.add_column("")
    for run in runs:
        table.add_column(f"{run['target']} ({run.get('backend') or 'no db'})", justify="right")
    if "comparison" in report:
        table.add_column("hub ÷ peer", justify="right")
    comparison = report.get("comparison")
    several_nodes = any(len(r.get("nodes", [])) > 1 for r in runs)

    def row(label: str, values: list[str], ratio: str | None = None) -> None:
        extra = [ratio or ""] if comparison else []
        table.add_row(label, *values, *extra)

    row("server processes", [_processes(r) for r in runs])
    row("sockets joined", [_fmt(r["memory"]["sockets"]) for r in runs])
    row(
        "connect+auth+join p50/p99 ms",
        [f"{_fmt(r['connect']['p50_ms'])} / {_fmt(r['connect']['p99_ms'])}" for r in runs],
    )
    for i, step in enumerate(runs[0]["steps"]):
        label = f"{step['rate']:g} msg/s for {step['duration_s']:g}s"
        row(f"[bold]{label}[/]", ["" for _ in runs])
        row(
            "  delivered msgs/s",
            [_fmt(r["steps"][i]["delivered_per_s"]) for r in runs],
            _fmt(comparison["steps"][i]["delivered_per_s_ratio"], 2) if comparison else None,
        )
        row(
            "  deliver p50/p95/p99/max ms",
            [
                "/".join(
                    _fmt(r["steps"][i]["deliver_latency"][k], 1)
                    for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms")
                )
                for r in runs
            ],
            _fmt(comparison["steps"][i]["p99_ratio"], 2) if comparison else None,
        )
        if several_nodes:
            for path in ("same", "cross"):
                row(
                    f"  {path}-node copies, p50/p99 ms",
                    [_path_latency(r["steps"][i], path) for r in runs],
                )
        row(
            "  CPU ms per 1,000 copies",
            [_fmt((r["steps"][i].get("cpu") or {}).get("cpu_ms_per_1000_copies"), 1) for r in runs],
            _fmt(comparison["steps"][i]["cpu_ms_per_1000_copies_ratio"], 2) if comparison else None,
        )
        row("  within bound", [_verdict(r["steps"][i]["verdict"]) for r in runs])
        row(
            "  ack p50/p99 ms",
            [
                f"{_fmt(r['steps'][i]['ack_latency']['p50_ms'])} / "
                f"{_fmt(r['steps'][i]['ack_latency']['p99_ms'])}"
                for r in runs
            ],
        )
    row("CPU while sending, ms", [_cpu_parts(r.get("cpu")) for r in runs])
    row(
        "CPU ms per 1,000 copies",
        [_fmt((r.get("cpu") or {}).get("cpu_ms_per_1000_copies"), 1) for r in runs],
        _fmt(comparison["cpu_ms_per_1000_copies_ratio"], 2) if comparison else None,
    )
    bound = runs[0]["capacity"]["bound_p99_ms"]
    row(
        f"capacity msg/s (p99 ≤ {bound:g} ms)",
        [_capacity(r["capacity"]) for r in runs],
        _capacity_ratio(comparison) if comparison else None,
    )
    row(
        "server RSS per socket KiB",
        [_fmt(r["memory"]["rss_per_socket_kib"]) for r in runs],
        _fmt(comparison["rss_per_socket_ratio"], 2) if comparison else None,
    )
    row("server CPU max %", [_fmt(r["server_cpu_percent_max"]) for r in runs])
    row("swarm CPU max %", [_fmt(r["swarm_cpu_percent_max"]) for r in runs])
    if any(r.get("redis") for r in runs):
        row("redis exit status", [_fmt((r.get("redis") or {}).get("exit_status")) for r in runs])
    row("unexpected disconnects", [_fmt(len(r["drops"])) for r in runs])
    row(
        "errors by code",
        [", ".join(f"{k} {v}" for k, v in r["errors"].items()) or "none" for r in runs],
    )
    console.print(table)
    for run in runs:
        if len(run.get("nodes", [])) > 1:
            console.print(_node_table(run))
    for run in runs:
        for check in run["checks"]:
            mark = {True: "[green]PASS[/]", False: "[red]FAIL[/]", None: "[dim]n/a[/]"}[
                check["passed"]
            ]
            console.print(f"{mark} {run['target']}: {check['name']} — {check['detail']}")


def _processes(run: dict[str, Any]) -> str:
    nodes = len(run.get("nodes", [])) or 1
    parts = [f"{nodes} node{'s' if nodes > 1 else ''}" if run["target"] == "hub" else run["target"]]
    seen = (run.get("cpu") or {}).get("processes_seen", {})
    if seen.get("postgresql"):
        parts.append(f"{seen['postgresql']} pg backends")
    if run.get("redis"):
        parts.append("redis")
    return " + ".join(parts)


def _p50_p99(latency: dict[str, Any]) -> str:
    return f"{_fmt(latency['p50_ms'])} / {_fmt(latency['p99_ms'])}"


def _path_latency(step: dict[str, Any], path: str) -> str:
    latency = step[f"deliver_latency_{path}_node"]
    return f"{latency['count']:,}: {_p50_p99(latency)}"


def _cpu_parts(cpu: dict[str, Any] | None) -> str:
    if not cpu:
        return "-"
    return " + ".join(f"{part} {_fmt(ms, 0)}" for part, ms in cpu["ms"].items())


def _verdict(verdict: dict[str, Any]) -> str:
    if verdict["passed"] is None:
        return "not run"
    return "yes" if verdict["passed"] else "no: " + "; ".join(verdict["reasons"])


def _capacity(figures: dict[str, Any]) -> str:
    if figures["rate"] is None:
        failed = figures["run_checks_failed"]
        return "none" + (f" ({'; '.join(failed)})" if failed else "")
    return ("≥ " if figures["lower_bound_only"] else "") + _fmt(figures["rate"], 0)


def _capacity_ratio(comparison: dict[str, Any]) -> str:
    value = comparison.get("capacity_ratio")
    if value is None:
        return "-"
    prefix = {"upper bound": "≤ ", "lower bound": "≥ ", "unknown": "? "}.get(
        comparison["capacity_ratio_bound"], ""
    )
    return prefix + _fmt(value, 2)


def _node_table(run: dict[str, Any]) -> Table:
    """A column per node: sockets joined of planned, senders, messages acked, copies received
    (and how many from other nodes), delivery latency at its sockets, CPU while sending, memory
    per socket, exit status."""
    nodes = run["nodes"]
    table = Table(title=f"{run['target']}: per node", show_lines=False)
    table.add_column("")
    for node in nodes:
        named = node["reported_node_id"] == node["name"]
        table.add_column(node["name"] + ("" if named else " (says otherwise)"), justify="right")
    rows = {
        "sockets joined / planned": lambda n: f"{n['joined']:,} / {n['sockets']:,}",
        "senders": lambda n: _fmt(n["senders"]),
        "messages acked": lambda n: _fmt(n["acked"]),
        "copies received": lambda n: _fmt(n["copies_received"]),
        "  of them from other nodes": lambda n: _fmt(n["copies_from_other_nodes"]),
        "deliver p50/p99 ms": lambda n: _p50_p99(n["deliver_latency"]),
        "CPU while sending, ms": lambda n: _fmt(n["cpu_ms_sending"], 0),
        "CPU max %": lambda n: _fmt(n["cpu_percent_max"]),
        "RSS per socket KiB": lambda n: _fmt(n["memory"]["rss_per_socket_kib"]),
        "exit status": lambda n: _fmt(n.get("exit_status")),
    }
    for label, cell in rows.items():
        table.add_row(label, *(cell(n) for n in nodes))
    return table


def plot(report: dict[str, Any], path: Path) -> None:
    """Latency percentiles and delivered rate per second; sockets open and server RSS and CPU."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs: list[dict[str, Any]] = report["runs"]
    fig, axes = plt.subplots(2, 2, figsize=(13, 8), constrained_layout=True)
    (latency, rate), (sockets, memory) = axes
    colours = {"hub": "tab:blue", "peer": "tab:orange", "url": "tab:green"}
    for run in runs:
        colour = colours.get(run["target"], "tab:gray")
        name = run["target"]
        series = run["series"]["per_second"]
        t = [p["t"] for p in series]
        latency.plot(t, [p["p50_ms"] for p in series], color=colour, ls=":", label=f"{name} p50")
        latency.plot(t, [p["p99_ms"] for p in series], color=colour, label=f"{name} p99")
        rate.plot(t, [p["delivered"] for p in series], color=colour, label=name)
        opened = run["series"]["open_sockets"]
        sockets.plot([p[0] for p in opened], [p[1] for p in opened], color=colour, label=name)
        samples = run["series"]["server"]
        if samples:
            memory.plot(
                [s[0] for s in samples],
                [s[2] / 2**20 for s in samples],
                color=colour,
                label=f"{name} RSS",
            )
        for step in run.get("steps_at_s", []):
            latency.axvspan(step["start"], step["end"], color=colour, alpha=0.05)
    cpu = memory.twinx()
    for run in runs:
        samples = run["series"]["server"]
        colour = colours.get(run["target"], "tab:gray")
        if samples:
            cpu.plot(
                [s[0] for s in samples],
                [s[1] for s in samples],
                color=colour,
                ls="--",
                alpha=0.5,
                label=f"{run['target']} CPU",
            )
    latency.set(title="send → deliver latency per second", xlabel="s", ylabel="ms")
    latency.set_yscale("log")
    rate.set(title="copies delivered per second", xlabel="s", ylabel="msgs/s")
    sockets.set(title="sockets joined", xlabel="s", ylabel="sockets")
    memory.set(title="server RSS (solid) and CPU (dashed)", xlabel="s", ylabel="MiB")
    cpu.set_ylabel("CPU % of one core")
    for axis in (latency, rate, sockets, memory):
        axis.grid(alpha=0.3)
        axis.legend(loc="upper left", fontsize=8)
    scenario = runs[0]["scenario"]
    fig.suptitle(
        f"{scenario['sockets']} sockets, {scenario['threads']} threads of "
        f"{scenario['members_per_thread']}, {scenario['senders']} senders"
        f" — time axis: seconds since the swarm started (each target its own run)"
    )
    fig.savefig(path, dpi=90)
    plt.close(fig)
