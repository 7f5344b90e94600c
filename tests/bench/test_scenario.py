"""How a scenario becomes a plan: threads, senders, swarm processes, source addresses."""

from __future__ import annotations

import pytest

from bench.load import metrics
from bench.load.scenario import (
    Member,
    Scenario,
    ThreadPlan,
    assign_senders,
    source_addresses,
    split_threads,
)


def threads(count: int, members: int) -> list[ThreadPlan]:
    return [
        ThreadPlan(thread_id=f"t{t}", members=[Member(f"u{t}-{m}", "o") for m in range(members)])
        for t in range(count)
    ]


def test_one_sender_per_thread_by_default():
    plan = threads(4, 3)
    assign_senders(plan, Scenario(sockets=12, members_per_thread=3).sender_count)
    assert [[m.sender for m in t.members] for t in plan] == [[True, False, False]] * 4


def test_more_senders_than_threads_wrap_to_the_next_member():
    plan = threads(2, 3)
    assign_senders(plan, 3)
    assert [[m.sender for m in t.members] for t in plan] == [
        [True, True, False],
        [True] + [False] * 2,
    ]


def test_whole_threads_go_to_one_swarm_process():
    parts = split_threads(threads(5, 2), 2)
    assert [len(p) for p in parts] == [3, 2]


def test_source_addresses_start_above_the_servers_address():
    assert source_addresses(3) == ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
    assert Scenario(sockets=10_000).address_count == 3


@pytest.mark.parametrize(
    "knobs",
    [
        {"sockets": 95, "members_per_thread": 10},
        {"members_per_thread": 1},
        {"senders": 0},
        {"message_bytes": 30_000},
    ],
)
def test_impossible_scenarios_are_refused_before_anything_starts(knobs):
    with pytest.raises(ValueError):
        Scenario(**knobs).validate()


def test_percentiles_are_nearest_rank():
    ordered = [float(v) for v in range(1, 101)]
    assert metrics.percentile(ordered, 50) == 50.0
    assert metrics.percentile(ordered, 99) == 99.0
    assert metrics.percentile(ordered, 100) == 100.0
