"""Capacity from a sweep's steps: each step's verdict, the run's capacity and its ratio to the
peer's, and when a sweep stops. Built from made-up steps; no server runs here."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from bench.load import capacity, metrics, report
from bench.load.run import _drops_by_step, _over_bound


def summary(rate: float, p99: float, *, delivered: int = 90, acked: int = 10) -> dict:
    return {
        "rate": rate,
        "delivered": delivered,
        "acked": acked,
        "deliver_latency": {"p99_ms": p99},
    }


def verdict(step: dict, **changes) -> dict:
    knobs = {
        "ran": True,
        "drained": True,
        "offered": 10,
        "sent": 10,
        "failed_sends": 0,
        "faults": {},
        "drops": 0,
    }
    knobs.update(changes)
    return capacity.step_verdict(step, **knobs)


def swept(*steps: tuple[float, float]) -> list[dict]:
    made = []
    for rate, p99 in steps:
        step = summary(rate, p99)
        step["verdict"] = verdict(step)
        made.append(step)
    return made


PASSING_CHECKS = [
    {"name": "every socket connected and joined", "passed": True},
    {"name": "every acknowledged message stored exactly once", "passed": True},
    {"name": "every subscriber got every message once, in order", "passed": False},
]


def test_a_step_within_the_bound_with_nothing_missing_passes():
    assert verdict(summary(100, 250.0)) == {"passed": True, "reasons": []}


@pytest.mark.parametrize(
    ("step", "changes", "reason"),
    [
        (summary(100, 250.1), {}, "delivery p99 250.1 ms > 250 ms"),
        (summary(100, float("nan"), delivered=0), {}, "no copy delivered"),
        (summary(100, 10.0), {"drained": False}, "not drained"),
        (summary(100, 10.0), {"sent": 8}, "2 of 10 offered messages not sent"),
        (summary(100, 10.0, acked=9), {}, "1 sends never acknowledged"),
        (summary(100, 10.0), {"faults": {"missing": 3, "duplicates": 0}}, "missing 3"),
        (summary(100, 10.0), {"drops": 1}, "1 sockets dropped"),
    ],
)
def test_a_step_fails_for_each_fault_and_says_which(step, changes, reason):
    judged = verdict(step, **changes)
    assert judged["passed"] is False
    assert any(reason in r for r in judged["reasons"]), judged["reasons"]


def test_a_step_the_sweep_never_ran_is_neither_passed_nor_failed():
    assert verdict(summary(100, 0.0), ran=False)["passed"] is None


def test_capacity_is_the_highest_rate_up_to_which_every_step_passed():
    steps = swept((500, 40.0), (1000, 120.0), (1500, 400.0), (2000, 200.0))
    figures = capacity.capacity(steps, PASSING_CHECKS)
    assert figures["rate"] == 1000
    # A later step back within the bound (a quiet moment) does not raise it, but is shown.
    assert figures["highest_rate_within_bound"] == 2000
    assert figures["lower_bound_only"] is False


def test_capacity_does_not_depend_on_the_order_the_steps_ran_in():
    steps = swept((1000, 120.0), (500, 40.0), (1500, 400.0))
    assert capacity.capacity(steps, PASSING_CHECKS)["rate"] == 1000


def test_a_sweep_that_never_reached_the_bound_gives_a_lower_bound():
    figures = capacity.capacity(swept((500, 40.0), (1000, 60.0)), PASSING_CHECKS)
    assert figures["rate"] == 1000
    assert figures["lower_bound_only"] is True


def test_no_capacity_when_the_first_step_is_over_the_bound():
    assert capacity.capacity(swept((500, 300.0), (1000, 60.0)), PASSING_CHECKS)["rate"] is None


@pytest.mark.parametrize("failed", capacity.RUN_WIDE_CHECKS)
def test_no_capacity_when_a_check_no_step_owns_failed(failed):
    checks = [{**c, "passed": False} if c["name"] == failed else c for c in PASSING_CHECKS]
    figures = capacity.capacity(swept((500, 40.0)), checks)
    assert figures["rate"] is None
    assert figures["run_checks_failed"] == [failed]


def test_no_capacity_when_faults_belong_to_no_step():
    figures = capacity.capacity(swept((500, 40.0)), PASSING_CHECKS, unattributed_faults=2)
    assert figures["rate"] is None


@pytest.mark.parametrize(
    ("hub_lower", "peer_lower", "bound"),
    [
        (False, False, "exact"),
        (False, True, "upper bound"),
        (True, False, "lower bound"),
        (True, True, "unknown"),
    ],
)
def test_the_capacity_ratio_says_when_it_is_only_a_bound(hub_lower, peer_lower, bound):
    hub = {"rate": 1000.0, "lower_bound_only": hub_lower}
    peer = {"rate": 2500.0, "lower_bound_only": peer_lower}
    assert capacity.ratio(hub, peer) == {"capacity_ratio": 0.4, "capacity_ratio_bound": bound}


def test_no_capacity_ratio_without_both_capacities():
    hub = {"rate": None, "lower_bound_only": False}
    peer = {"rate": 2500.0, "lower_bound_only": True}
    assert capacity.ratio(hub, peer)["capacity_ratio"] is None


def run_with_steps(cpu_per_step: list[tuple[float, int] | None], rate: float | None) -> dict:
    steps = []
    for index, cpu in enumerate(cpu_per_step):
        step = summary(100.0 * (index + 1), 10.0)
        step["delivered_per_s"] = 900.0
        if cpu is not None:
            step["cpu"] = metrics.cpu_figures({"server": cpu[0]}, 10.0, cpu[1])
        steps.append(step)
    return {
        "steps": steps,
        "memory": {"rss_per_socket_kib": 40.0},
        "capacity": {"rate": rate, "lower_bound_only": False},
    }


def test_cpu_per_copy_is_compared_over_the_steps_both_sides_ran():
    hub = run_with_steps([(3000.0, 9000), (6000.0, 18000), None], rate=200.0)
    peer = run_with_steps([(1000.0, 9000), (2000.0, 18000), (3000.0, 27000)], rate=300.0)
    comparison = report.compare(hub, peer)
    # 9,000 ms over 27,000 copies against 3,000 ms over the same steps' 27,000
    assert comparison["hub_cpu_ms_per_1000_copies"] == pytest.approx(333.33)
    assert comparison["peer_cpu_ms_per_1000_copies"] == pytest.approx(111.11)
    assert comparison["cpu_ms_per_1000_copies_ratio"] == 3.0
    assert [s["cpu_ms_per_1000_copies_ratio"] for s in comparison["steps"]] == [3.0, 3.0, None]
    assert comparison["capacity_ratio"] == pytest.approx(0.67)
    assert comparison["capacity_ratio_bound"] == "exact"


def test_cpu_figures_add_up():
    figures = metrics.cpu_figures({"hub": 700.0, "postgresql": 250.0, "redis": 50.0}, 10.0, 4500)
    assert figures["total_ms"] == 1000.0
    assert figures["cpu_ms_per_1000_copies"] == pytest.approx(222.22)
    assert figures["cpu_percent"] == 10.0
    assert metrics.cpu_figures({"peer": 5.0}, 1.0, 0)["cpu_ms_per_1000_copies"] is None


def test_copies_split_into_same_node_and_cross_node():
    deliveries = [
        metrics.Delivery(1.0, 0.010, 0, 0, 0),
        metrics.Delivery(1.0, 0.020, 0, 0, 1),
        metrics.Delivery(1.0, 0.030, 0, 1, 0),
        metrics.Delivery(1.0, 0.040, 1, 1, 1),  # another step
    ]
    step = metrics.step_summary(0, 10.0, 1.0, deliveries, [], recipients=2)
    assert step["deliver_latency"]["count"] == 3
    assert step["deliver_latency_same_node"]["count"] == 1
    assert step["deliver_latency_cross_node"]["count"] == 2
    assert step["deliver_latency_cross_node"]["max_ms"] == 30.0


def worker(step_done: dict | None) -> SimpleNamespace:
    return SimpleNamespace(step_outcomes={} if step_done is None else {0: step_done})


@pytest.mark.parametrize(
    ("outcome", "stops"),
    [
        ({"offered": 10, "drained": True, "deliver_p99_ms": 120.0}, False),
        ({"offered": 10, "drained": True, "deliver_p99_ms": 260.0}, True),
        ({"offered": 10, "drained": False, "deliver_p99_ms": 20.0}, True),
        ({"offered": 10, "drained": True, "deliver_p99_ms": None}, True),
        ({"offered": 0, "drained": True, "deliver_p99_ms": None}, False),  # no sender there
        (None, True),
    ],
)
def test_a_sweep_stops_at_the_first_step_a_swarm_process_saw_over_the_bound(outcome, stops):
    calm = worker({"offered": 10, "drained": True, "deliver_p99_ms": 5.0})
    assert _over_bound([calm, worker(outcome)], 0) is stops


def test_a_drop_belongs_to_the_step_running_when_it_happened():
    steps_at = [{"start": 10.0, "end": 20.0}, {"start": 25.0, "end": 35.0}]
    assert _drops_by_step([5.0, 12.0, 22.0, 30.0, 40.0], steps_at) == ([2, 2], 1)
