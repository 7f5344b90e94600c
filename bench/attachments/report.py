"""The printed tables of a run, and its JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

WIDTH = 120  # when printing to a file or a pipe (rich would otherwise assume 80 columns)


def write_json(result: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(result, indent=1, default=str, allow_nan=False) + "\n")


def print_table(result: dict[str, Any], console: Console | None = None) -> None:
    if console is None:
        console = Console()
        if not console.is_terminal:
            console = Console(width=WIDTH)
    machine = result["machine"]
    speed = Table(
        title=f"Attachments: MB/s ({result['database']}, commit {result['commit']})",
        caption="MB = 10^6 bytes; median (min-max) of each size's runs",
    )
    for column in ("size", "runs", "copy", "upload", "÷ copy", "download", "÷ copy"):
        speed.add_column(column, justify="left" if column == "size" else "right")
    for row in result["sizes"]:
        speed.add_row(
            row["size"],
            str(row["repeat"]),
            _spread(row["copy"]),
            _spread(row["upload"]),
            _ratio(row["upload_vs_copy"]),
            _spread(row["download"]),
            _ratio(row["download_vs_copy"]),
        )
    console.print(speed)

    rss = Table(
        title="Hub RSS (MiB)",
        caption="idle: just before the size's first upload; peak: VmRSS sampled every 10 ms",
    )
    columns = ("size", "idle", "upload peak", "upload - idle", "download - idle", "after", "VmHWM")
    for column in columns:
        rss.add_column(column, justify="left" if column == "size" else "right")
    for row in result["sizes"]:
        mem = row["memory"]
        rss.add_row(
            row["size"],
            f"{mem['idle_rss_mib']:.1f}",
            f"{mem['upload_peak_rss_mib']:.1f}",
            f"{mem['upload_peak_above_idle_mib']:+.1f}",
            f"{mem['download_peak_above_idle_mib']:+.1f}",
            f"{mem['rss_after_mib']:.1f}",
            f"{mem['vmhwm_after_mib']:.1f}",
        )
    console.print(rss)

    warm = result["warmup"]
    console.print(
        f"After the warm-up ({warm['size']} up and down): RSS {warm['idle_rss_mib']:.1f} MiB, "
        f"VmHWM {warm['vmhwm_mib']:.1f} MiB."
    )
    target = result["rss_target"]
    if target is not None:
        verdict = "met" if target["met"] else "NOT met"
        console.print(
            f"Hub RSS during the {target['size']} uploads: peak "
            f"{target['upload_peak_above_idle_mib']:+.1f} MiB over idle "
            f"(target at most +{target['bound_mib']:g} MiB): {verdict}."
        )
    console.print(
        f"Load average {_load(machine['load_average_at_start'])} at start, "
        f"{_load(result['load_average_at_end'])} at end; {machine['cores']} cores."
    )


def _spread(figures: dict[str, float]) -> str:
    return f"{figures['median']:.1f} ({figures['min']:.1f}-{figures['max']:.1f})"


def _ratio(ratio: float | None) -> str:
    return "n/a" if ratio is None else f"{ratio:.2f}"


def _load(values: Any) -> str:
    return " ".join(f"{v:.2f}" for v in values)
