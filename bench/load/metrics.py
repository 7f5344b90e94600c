"""Turning raw samples into figures: percentiles, per-step summaries and per-second series.

Swarm processes send raw samples (monotonic times, seconds); everything is computed here once,
over the samples of every process together, so percentiles are true percentiles of the run and
not averages of per-process ones.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values; NaN when there are none."""
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[rank - 1]


def summarize_ms(values: Iterable[float]) -> dict[str, float | int]:
    ordered = sorted(values)
    return {
        "count": len(ordered),
        "p50_ms": _ms(percentile(ordered, 50)),
        "p95_ms": _ms(percentile(ordered, 95)),
        "p99_ms": _ms(percentile(ordered, 99)),
        "max_ms": _ms(ordered[-1] if ordered else math.nan),
    }


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 2) if not math.isnan(seconds) else math.nan


def triples(flat: Sequence[float]) -> list[tuple[float, float, int]]:
    return [(flat[i], flat[i + 1], int(flat[i + 2])) for i in range(0, len(flat), 3)]


def pairs(flat: Sequence[float]) -> list[tuple[float, float]]:
    return [(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)]


def step_summary(
    index: int,
    rate: float,
    duration_s: float,
    deliveries: list[tuple[float, float, int]],
    acks: list[tuple[float, float, int]],
    recipients: int,
) -> dict[str, Any]:
    """Latency and throughput of one step. Delivered msgs/s is the step's copies over the time
    from its first to its last copy: when the server keeps up that is the offered rate times the
    recipients; when it falls behind, the copies spread out and the rate shows it."""
    mine = [d for d in deliveries if d[2] == index]
    times = [d[0] for d in mine]
    span = (max(times) - min(times)) if len(times) > 1 else duration_s
    span = max(span, duration_s * 0.5)
    return {
        "step": index,
        "rate": rate,
        "duration_s": duration_s,
        "offered_deliveries_per_s": rate * recipients,
        "delivered": len(mine),
        "delivered_per_s": round(len(mine) / span, 1) if mine else 0.0,
        "deliver_latency": summarize_ms(d[1] for d in mine),
        "ack_latency": summarize_ms(a[1] for a in acks if a[2] == index),
    }


def per_second(deliveries: list[tuple[float, float, int]], origin: float) -> list[dict[str, float]]:
    """Delivered copies and latency percentiles per second of the run (by arrival time)."""
    buckets: dict[int, list[float]] = defaultdict(list)
    for at, latency, _ in deliveries:
        buckets[int(at - origin)].append(latency)
    series = []
    for second in sorted(buckets):
        ordered = sorted(buckets[second])
        series.append(
            {
                "t": second,
                "delivered": len(ordered),
                "p50_ms": _ms(percentile(ordered, 50)),
                "p99_ms": _ms(percentile(ordered, 99)),
                "max_ms": _ms(ordered[-1]),
            }
        )
    return series


def open_sockets_series(events: Iterable[float], origin: float) -> list[tuple[float, int]]:
    """(seconds since origin, sockets open) after each open (+t) or close (-t) event."""
    ordered = sorted(events, key=abs)
    series, count = [], 0
    for event in ordered:
        count += 1 if event > 0 else -1
        series.append((round(abs(event) - origin, 3), count))
    return series
