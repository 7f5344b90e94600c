"""Capacity: the highest rate of a sweep at which a target keeps delivery p99 within the bound
(250 ms) with every check passing, and the verdict on each step it rests on.

A step is within bound when it ran, every swarm process drained it (every ack and every copy
arrived in time), every message offered was sent and acknowledged, every subscriber got each of
the step's messages once and in order, no socket dropped during it, and its delivery p99 is at
most the bound. Faults are counted against the step their message was sent in, so a step above
the capacity cannot fail the ones below it.

A run's capacity is the highest swept rate r such that every step at a rate up to r was within
bound — "p99 stays ≤ 250 ms" up to it — provided the run-wide checks that no step owns passed:
every socket joined, and every acknowledged message is stored exactly once. When every swept
step was within bound, the capacity is only a lower bound (the sweep did not reach the limit),
and a ratio against it is one-sided; `compare` says which side.
"""

from __future__ import annotations

import math
from typing import Any

BOUND_P99_MS = 250.0

RUN_WIDE_CHECKS = (
    "every socket connected and joined",
    "every acknowledged message stored exactly once",
)


def step_verdict(
    step: dict[str, Any],
    *,
    ran: bool,
    drained: bool,
    offered: int,
    sent: int,
    failed_sends: int,
    faults: dict[str, int],
    drops: int,
    bound_ms: float = BOUND_P99_MS,
) -> dict[str, Any]:
    """Whether one step (a `bench.load.metrics.step_summary`) was within bound, and why not."""
    if not ran:
        return {"passed": None, "reasons": ["not run: the sweep stopped at an earlier step"]}
    reasons = []
    p99 = step["deliver_latency"]["p99_ms"]
    if step["delivered"] == 0 or p99 is None or math.isnan(p99):
        reasons.append("no copy delivered")
    elif p99 > bound_ms:
        reasons.append(f"delivery p99 {p99:g} ms > {bound_ms:g} ms")
    if not drained:
        reasons.append("not drained: acks or copies still missing at the end of the drain")
    if sent < offered:
        reasons.append(f"{offered - sent} of {offered} offered messages not sent")
    if failed_sends:
        reasons.append(f"{failed_sends} sends refused")
    if step["acked"] < sent - failed_sends:
        reasons.append(f"{sent - failed_sends - step['acked']} sends never acknowledged")
    bad = {kind: n for kind, n in faults.items() if n}
    if bad:
        reasons.append("delivery faults " + ", ".join(f"{k} {v}" for k, v in sorted(bad.items())))
    if drops:
        reasons.append(f"{drops} sockets dropped")
    return {"passed": not reasons, "reasons": reasons}


def capacity(
    steps: list[dict[str, Any]],
    checks: list[dict[str, Any]],
    unattributed_faults: int = 0,
    bound_ms: float = BOUND_P99_MS,
) -> dict[str, Any]:
    """The run's capacity from its steps (each with its `verdict`) and its run-wide checks."""
    by_name = {check["name"]: check for check in checks}
    failed_run_checks = [
        name for name in RUN_WIDE_CHECKS if by_name.get(name, {}).get("passed") is False
    ]
    if unattributed_faults:
        failed_run_checks.append(f"{unattributed_faults} delivery faults outside every step")
    swept = sorted(
        (s for s in steps if s["verdict"]["passed"] is not None), key=lambda s: s["rate"]
    )
    rate = None
    for step in swept:
        if not step["verdict"]["passed"]:
            break
        rate = step["rate"]
    within = [s["rate"] for s in swept if s["verdict"]["passed"]]
    result: dict[str, Any] = {
        "bound_p99_ms": bound_ms,
        "rate": None if failed_run_checks else rate,
        "highest_rate_within_bound": max(within) if within and not failed_run_checks else None,
        "lower_bound_only": bool(swept) and len(within) == len(swept) and not failed_run_checks,
        "run_checks_failed": failed_run_checks,
        "steps": [
            {
                "rate": s["rate"],
                "p99_ms": s["deliver_latency"]["p99_ms"],
                "passed": s["verdict"]["passed"],
                "reasons": s["verdict"]["reasons"],
            }
            for s in steps
        ],
    }
    return result


def ratio(hub: dict[str, Any], peer: dict[str, Any]) -> dict[str, Any]:
    """Hub ÷ peer capacity, and whether that is the ratio or only a bound on it."""
    mine, theirs = hub.get("rate"), peer.get("rate")
    if not mine or not theirs:
        return {"capacity_ratio": None, "capacity_ratio_bound": None}
    bound = {
        (False, False): "exact",  # within the sweep's resolution
        (False, True): "upper bound",  # the peer could take more than the sweep offered
        (True, False): "lower bound",
        (True, True): "unknown",
    }[(bool(hub["lower_bound_only"]), bool(peer["lower_bound_only"]))]
    return {"capacity_ratio": round(mine / theirs, 2), "capacity_ratio_bound": bound}
