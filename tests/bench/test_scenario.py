"""How a scenario becomes a plan: threads, senders, hub nodes, swarm processes, source
addresses."""

from __future__ import annotations

import itertools

import pytest

from bench.load import metrics
from bench.load.scenario import (
    Member,
    Scenario,
    ThreadPlan,
    assign_nodes,
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


def test_neighbouring_members_of_a_thread_are_on_different_nodes():
    plan = threads(3, 4)
    assign_nodes(plan, 2)
    for thread in plan:
        nodes = [m.node for m in thread.members]
        assert all(a != b for a, b in itertools.pairwise(nodes))


def test_every_node_gets_members_of_every_thread_and_an_equal_share():
    plan = threads(6, 4)
    assign_nodes(plan, 3)
    assert all({m.node for m in t.members} == {0, 1, 2} for t in plan)
    every = [m.node for t in plan for m in t.members]
    assert [every.count(n) for n in range(3)] == [8, 8, 8]


def test_the_default_senders_are_spread_over_the_nodes_too():
    plan = threads(4, 10)
    assign_senders(plan, len(plan))
    assign_nodes(plan, 2)
    sender_nodes = [m.node for t in plan for m in t.members if m.sender]
    assert sender_nodes == [0, 1, 0, 1]


def test_one_node_takes_every_socket():
    plan = threads(3, 5)
    assign_nodes(plan, 1)
    assert {m.node for t in plan for m in t.members} == {0}


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
