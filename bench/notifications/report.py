"""The printed tables of a run."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

WIDTH = 120  # when printing to a file or a pipe (rich would otherwise assume 80 columns)


def print_table(result: dict[str, Any], console: Console | None = None) -> None:
    """Messages/s of both phases side by side, then the webhook deliveries and the checks."""
    if console is None:
        console = Console()
        if not console.is_terminal:
            console = Console(width=WIDTH)
    scenario = result["scenario"]
    phases = result["phases"]
    posting = Table(
        title=f"Notifications on the message path ({result['database']}, "
        f"commit {result['commit']})",
        caption=f"{scenario['concurrency']} closed-loop workers, {scenario['senders']} senders, "
        f"{scenario['threads']} threads, {scenario['seconds']:g} s a phase; notifying: "
        f"{scenario['mentions_per_message']} mentions and {scenario['webhooks']} webhook "
        "deliveries a message",
    )
    columns = ("phase", "messages", "msg/s", "POST p50 ms", "POST p99 ms", "hub CPU ms/msg")
    for column in (*columns, "hub CPU %", "bench CPU %"):
        posting.add_column(column, justify="left" if column == "phase" else "right")
    for name in ("plain", "notifying"):
        row = phases[name]
        posting.add_row(
            name,
            str(row["messages"]),
            f"{row['msgs_per_s']:.1f}",
            _ms(row["post_latency_ms"]["p50"]),
            _ms(row["post_latency_ms"]["p99"]),
            _ms(row["hub_cpu_ms_per_message"]),
            _ms(row["hub_cpu_percent"]),
            _ms(row["bench_cpu_percent"]),
        )
    ratio = result["notifying_vs_plain_msgs_per_s"]
    posting.add_row("notifying ÷ plain", "", "n/a" if ratio is None else f"{ratio:.3f}", *[""] * 5)
    console.print(posting)

    d = result["deliveries"]
    metrics = result["hub_delivery_metrics"]["notifying_phase"].get("webhook", {})
    hooks = Table(title="Webhook deliveries of the notifying phase", caption=_caption(d))
    columns = ("expected", "received", "/s posting", "/s overall", "lag p50 ms", "lag p99 ms")
    for column in (*columns, "drain s", "dup", "bad sig", "retry", "dead"):
        hooks.add_column(column, justify="right")
    hooks.add_row(
        str(d["expected"]),
        str(d["received"]),
        _ms(d["per_s_while_posting"]),
        _ms(d["per_s_overall"]),
        _ms(d["lag_ms"]["p50"]),
        _ms(d["lag_ms"]["p99"]),
        _ms(d["drain_s"]),
        str(d["duplicates"]),
        str(d["signature_invalid"] + d["timestamp_invalid"]),
        _count(metrics.get("retry")),
        _count(metrics.get("dead")),
    )
    console.print(hooks)

    for check, ok in result["checks"].items():
        console.print(f"{'PASS' if ok else 'FAIL'}  {check}")
    machine = result["machine"]
    console.print(
        f"Load average {_load(machine['load_average_at_start'])} at start, "
        f"{_load(result['load_average_at_end'])} at end; {machine['cores']} cores."
    )


def _caption(d: dict[str, Any]) -> str:
    drained = "drained" if d["drain_complete"] else f"NOT drained after {d['drain_waited_s']} s"
    return (
        "lag: receiver arrival - message created_at; drain: last arrival - end of posting; "
        f"retry/dead: hub_notification_deliveries_total; {drained}"
    )


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.1f}"


def _count(value: float | None) -> str:
    return "n/a" if value is None else f"{value:g}"


def _load(values: Any) -> str:
    return " ".join(f"{v:.2f}" for v in values)
