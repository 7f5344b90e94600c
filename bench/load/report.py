"""What a run leaves behind: the JSON result, a PNG plot and a short printed table, with the hub
and the peer side by side and their ratios when both ran."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table


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
    """Hub ÷ peer, step by step, for delivered msgs/s and p99, and for memory per socket."""
    steps = []
    for mine, theirs in zip(hub["steps"], peer["steps"], strict=False):
        steps.append(
            {
                "rate": mine["rate"],
                "delivered_per_s_ratio": _ratio(mine["delivered_per_s"], theirs["delivered_per_s"]),
                "p99_ratio": _ratio(
                    mine["deliver_latency"]["p99_ms"], theirs["deliver_latency"]["p99_ms"]
                ),
            }
        )
    return {
        "steps": steps,
        "rss_per_socket_ratio": _ratio(
            hub["memory"]["rss_per_socket_kib"], peer["memory"]["rss_per_socket_kib"]
        ),
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

    def row(label: str, values: list[str], ratio: str | None = None) -> None:
        extra = [ratio or ""] if comparison else []
        table.add_row(label, *values, *extra)

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
        row(
            "  ack p50/p99 ms",
            [
                f"{_fmt(r['steps'][i]['ack_latency']['p50_ms'])} / "
                f"{_fmt(r['steps'][i]['ack_latency']['p99_ms'])}"
                for r in runs
            ],
        )
    row(
        "server RSS per socket KiB",
        [_fmt(r["memory"]["rss_per_socket_kib"]) for r in runs],
        _fmt(comparison["rss_per_socket_ratio"], 2) if comparison else None,
    )
    row("server CPU max %", [_fmt(r["server_cpu_percent_max"]) for r in runs])
    row("swarm CPU max %", [_fmt(r["swarm_cpu_percent_max"]) for r in runs])
    row("unexpected disconnects", [_fmt(len(r["drops"])) for r in runs])
    row(
        "errors by code",
        [", ".join(f"{k} {v}" for k, v in r["errors"].items()) or "none" for r in runs],
    )
    console.print(table)
    for run in runs:
        for check in run["checks"]:
            mark = {True: "[green]PASS[/]", False: "[red]FAIL[/]", None: "[dim]n/a[/]"}[
                check["passed"]
            ]
            console.print(f"{mark} {run['target']}: {check['name']} — {check['detail']}")


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
