"""Turning raw samples into figures: percentiles, per-step summaries and per-second series.

Swarm processes send raw samples (monotonic times, seconds); everything is computed here once,
over the samples of every process together, so percentiles are true percentiles of the run and
not averages of per-process ones.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

# The swarm's flat arrays (`bench.load.swarm.Swarm`): values per sample.
CONNECT_WIDTH = 3
DELIVERY_WIDTH = 5
ACK_WIDTH = 4


class Connect(NamedTuple):
    at: float
    duration: float  # connect + auth + join
    node: int


class Delivery(NamedTuple):
    at: float  # when the receiving socket decoded it
    latency: float  # from the send time in the message's metadata
    step: int  # -1: a message this swarm did not send
    sender_node: int  # -1: unknown (the same)
    receiver_node: int


class Ack(NamedTuple):
    at: float
    latency: float
    step: int
    node: int  # the sender's


def connects(flat: Sequence[float]) -> list[Connect]:
    return [
        Connect(flat[i], flat[i + 1], int(flat[i + 2])) for i in range(0, len(flat), CONNECT_WIDTH)
    ]


def deliveries(flat: Sequence[float]) -> list[Delivery]:
    return [
        Delivery(flat[i], flat[i + 1], int(flat[i + 2]), int(flat[i + 3]), int(flat[i + 4]))
        for i in range(0, len(flat), DELIVERY_WIDTH)
    ]


def acks(flat: Sequence[float]) -> list[Ack]:
    return [
        Ack(flat[i], flat[i + 1], int(flat[i + 2]), int(flat[i + 3]))
        for i in range(0, len(flat), ACK_WIDTH)
    ]


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


def step_summary(
    index: int,
    rate: float,
    duration_s: float,
    deliveries: list[Delivery],
    acks: list[Ack],
    recipients: int,
) -> dict[str, Any]:
    """Latency and throughput of one step. Delivered msgs/s is the step's copies over the time
    from its first to its last copy: when the server keeps up that is the offered rate times the
    recipients; when it falls behind, the copies spread out and the rate shows it. Same-node and
    cross-node latency split the copies by whether sender and receiver were on one hub node
    (against one node, or the peer, every copy is same-node)."""
    mine = [d for d in deliveries if d.step == index]
    times = [d.at for d in mine]
    span = (max(times) - min(times)) if len(times) > 1 else duration_s
    span = max(span, duration_s * 0.5)
    return {
        "step": index,
        "rate": rate,
        "duration_s": duration_s,
        "offered_deliveries_per_s": rate * recipients,
        "delivered": len(mine),
        "delivered_per_s": round(len(mine) / span, 1) if mine else 0.0,
        "deliver_latency": summarize_ms(d.latency for d in mine),
        "deliver_latency_same_node": summarize_ms(
            d.latency for d in mine if d.sender_node == d.receiver_node
        ),
        "deliver_latency_cross_node": summarize_ms(
            d.latency for d in mine if d.sender_node != d.receiver_node
        ),
        "acked": sum(1 for a in acks if a.step == index),
        "ack_latency": summarize_ms(a.latency for a in acks if a.step == index),
    }


def cpu_figures(ms_by_part: dict[str, float], window_s: float, copies: int) -> dict[str, Any]:
    """CPU spent over a window by each part of one side (hub nodes, PostgreSQL backends, Redis;
    or the peer), in all and per 1,000 copies delivered in it: the cost of a copy, which moves
    far less than latency when the shared machine drifts."""
    total = sum(ms_by_part.values())
    return {
        "window_s": round(window_s, 3),
        "ms": {part: round(ms, 1) for part, ms in ms_by_part.items()},
        "total_ms": round(total, 1),
        "copies": copies,
        "cpu_ms_per_1000_copies": round(total / copies * 1000.0, 2) if copies else None,
        "cpu_percent": round(total / window_s / 10.0, 1) if window_s > 0 else None,
    }


def per_second(deliveries: list[Delivery], origin: float) -> list[dict[str, float]]:
    """Delivered copies and latency percentiles per second of the run (by arrival time)."""
    buckets: dict[int, list[float]] = defaultdict(list)
    for delivery in deliveries:
        buckets[int(delivery.at - origin)].append(delivery.latency)
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
