"""The load bench with several hub nodes, a private Redis, CPU per copy and a capacity sweep, end
to end on tiny scenarios (a few sockets, a couple of seconds). Like test_load_scenario, these
assert what the harness did and that its figures are consistent, never a timing.

Two nodes share one PostgreSQL database and the bench's own Redis, through which the hub's
broker carries each message to the other node. The tests pin the harness (both nodes started
with their own settings, each thread's members and the senders spread over them, every figure
collected per node and in total; Redis, the nodes and the database gone at the end) and the
outcome the bench exists to check: every subscriber, on either node, got every message once and
in order. Were the broker to stop crossing nodes, only the sockets on a sender's node would get
its message, and the delivery tests here would say so.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from bench.load.redis_server import answers_ping
from tests.bench.test_load_scenario import ROOT, checks_of, run_bench
from tests.conftest import POSTGRES_DSN, REQUIRE_POSTGRES

needs_redis = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="redis-server is not installed"
)

TWO_NODES = (
    *("--hubs", "2"),
    *("--sockets", "16", "--members-per-thread", "4"),
    *("--rate", "4", "--duration", "2", "--drain", "5"),
)
MESSAGES = 8  # 4 msg/s for 2 s
# Member k of thread t is on node (t + k) mod 2 and the sender is member 0: of its 3 listeners,
# members 1 and 3 are on the other node and member 2 on its own.
CROSS_NODE_COPIES, SAME_NODE_COPIES = 2 * MESSAGES, MESSAGES


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def database_exists(name: str) -> bool:
    async def look() -> bool:
        conn = await asyncpg.connect(POSTGRES_DSN, timeout=10)
        try:
            return bool(await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name))
        finally:
            await conn.close()

    return asyncio.run(look())


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory: pytest.TempPathFactory) -> dict:
    if not POSTGRES_DSN:
        if REQUIRE_POSTGRES:
            pytest.fail("HUB_REQUIRE_POSTGRES=1 but HUB_TEST_POSTGRES_DSN is not set")
        pytest.skip("--hubs 2 needs PostgreSQL: HUB_TEST_POSTGRES_DSN is not set")
    if shutil.which("redis-server") is None:
        pytest.skip("--hubs 2 starts a private redis-server, which is not installed")
    out = tmp_path_factory.mktemp("hubs")
    result = run_bench(out, *TWO_NODES, "--database", POSTGRES_DSN)
    result["out"] = out
    return result


def plan_of(result: dict) -> dict:
    return json.loads((result["out"] / "hub" / "hub-swarm-0.plan.json").read_text())


@pytest.mark.postgres
def test_two_nodes_start_each_with_its_own_node_id_and_ports(two_nodes):
    run = two_nodes["runs"][0]
    assert run["hubs"] == 2
    nodes = run["nodes"]
    assert [n["name"] for n in nodes] == ["node-0", "node-1"]
    assert [n["reported_node_id"] for n in nodes] == ["node-0", "node-1"]
    assert len({n["pid"] for n in nodes}) == 2
    assert len({n["ws_url"] for n in nodes}) == 2
    assert [n["exit_status"] for n in nodes] == [0, 0], "both stopped gracefully"


@pytest.mark.postgres
def test_each_thread_has_members_on_both_nodes_and_so_do_the_senders(two_nodes):
    plan = plan_of(two_nodes)
    assert len(plan["ws_urls"]) == 2
    for thread in plan["threads"]:
        assert {m["node"] for m in thread["members"]} == {0, 1}
    assert {m["node"] for t in plan["threads"] for m in t["members"] if m["sender"]} == {0, 1}
    nodes = two_nodes["runs"][0]["nodes"]
    assert [n["sockets"] for n in nodes] == [8, 8]
    assert [n["senders"] for n in nodes] == [2, 2]


@pytest.mark.postgres
def test_every_socket_joined_its_node_and_every_message_is_stored_once(two_nodes):
    run = two_nodes["runs"][0]
    checks = checks_of(run)
    assert checks["every socket connected and joined"]["passed"] is True
    assert checks["every acknowledged message stored exactly once"]["passed"] is True
    assert checks["every message sent was acknowledged"]["passed"] is True
    assert [n["joined"] for n in run["nodes"]] == [8, 8]


@pytest.mark.postgres
def test_every_subscriber_on_either_node_got_every_message_once_in_order(two_nodes):
    run = two_nodes["runs"][0]
    check = checks_of(run)["every subscriber got every message once, in order"]
    assert check["passed"] is True, check["detail"]
    assert run["delivery"]["subscribers_ok"] == 16
    step = run["steps"][0]
    assert step["deliver_latency_cross_node"]["count"] == CROSS_NODE_COPIES
    assert step["deliver_latency_same_node"]["count"] == SAME_NODE_COPIES
    assert [n["copies_from_other_nodes"] for n in run["nodes"]] == [MESSAGES, MESSAGES]
    assert two_nodes["passed"] is True, two_nodes["output"]
    assert two_nodes["exit_status"] == 0


@pytest.mark.postgres
def test_per_node_figures_add_up_to_the_totals(two_nodes):
    run = two_nodes["runs"][0]
    nodes = run["nodes"]
    assert sum(n["acked"] for n in nodes) == run["counters"]["acked"] == MESSAGES
    assert sum(n["copies_received"] for n in nodes) == run["counters"]["delivered"]
    step = run["steps"][0]
    same, cross = step["deliver_latency_same_node"], step["deliver_latency_cross_node"]
    assert same["count"] + cross["count"] == step["deliver_latency"]["count"] == step["delivered"]
    assert sum(n["copies_from_other_nodes"] for n in nodes) == cross["count"]


@pytest.mark.postgres
def test_the_hub_side_cpu_counts_both_nodes_their_database_backends_and_redis(two_nodes):
    cpu = two_nodes["runs"][0]["cpu"]
    assert set(cpu["ms"]) == {"hub", "postgresql", "redis"}
    assert cpu["processes_seen"]["hub"] == 2
    assert cpu["processes_seen"]["postgresql"] >= 2, "each node holds connections of its own"
    assert cpu["processes_seen"]["redis"] == 1
    assert cpu["total_ms"] == pytest.approx(sum(cpu["ms"].values()), abs=0.2)
    nodes = two_nodes["runs"][0]["nodes"]
    assert sum(n["cpu_ms_sending"] for n in nodes) == pytest.approx(cpu["ms"]["hub"], abs=0.2)


@pytest.mark.postgres
def test_redis_the_nodes_and_the_database_are_gone_afterwards(two_nodes):
    run = two_nodes["runs"][0]
    redis = run["redis"]
    assert redis["prefix"].startswith("bench-")
    assert redis["exit_status"] == 0
    assert not alive(redis["pid"])
    assert not answers_ping(redis["port"])
    assert not any(alive(n["pid"]) for n in run["nodes"])
    assert run["database_dropped"] is True
    assert run["database_name"].startswith("hub_bench_")
    assert not database_exists(run["database_name"])


def test_several_nodes_on_sqlite_are_refused_before_anything_starts(tmp_path):
    completed = subprocess.run(
        [sys.executable, "-m", "bench.load", "--hubs", "2", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 2
    assert "--database postgresql://" in completed.stderr
    assert not (Path(tmp_path) / "hub").exists()


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("sweep")
    return run_bench(
        out,
        *("--sweep", "8,4", "--redis"),
        *("--sockets", "20", "--members-per-thread", "5", "--duration", "1.5"),
    )


@needs_redis
def test_a_sweep_runs_the_hub_and_the_peer_over_the_rates_in_ascending_order(sweep):
    assert [r["target"] for r in sweep["runs"]] == ["hub", "peer"]
    for run in sweep["runs"]:
        assert run["scenario"]["sweep"] is True
        assert [s["rate"] for s in run["steps"]] == [4.0, 8.0]


@needs_redis
def test_each_side_reports_cpu_per_1000_copies_from_its_own_processes(sweep):
    hub, peer = sweep["runs"]
    assert set(hub["cpu"]["ms"]) == {"hub", "redis"}, "SQLite runs inside the hub"
    assert set(peer["cpu"]["ms"]) == {"peer"}
    for run in (hub, peer):
        ran = [s for s in run["steps"] if s["ran"]]
        assert run["cpu"]["copies"] == sum(s["delivered"] for s in ran)
        for step in ran:
            cpu = step["cpu"]
            assert cpu["copies"] == step["delivered"]
            if cpu["copies"]:
                expected = cpu["total_ms"] / cpu["copies"] * 1000
                assert cpu["cpu_ms_per_1000_copies"] == pytest.approx(expected, abs=0.01)


@needs_redis
def test_the_comparison_gives_the_cpu_and_capacity_ratios(sweep):
    comparison = sweep["comparison"]
    hub, peer = comparison["hub_cpu_ms_per_1000_copies"], comparison["peer_cpu_ms_per_1000_copies"]
    if hub is not None and peer:
        assert comparison["cpu_ms_per_1000_copies_ratio"] == pytest.approx(hub / peer, abs=0.01)
    assert "capacity_ratio" in comparison
    assert "capacity_ratio_bound" in comparison
    assert comparison["hub_capacity"] == sweep["runs"][0]["capacity"]["rate"]


@needs_redis
def test_capacity_is_the_highest_rate_up_to_which_every_step_was_within_bound(sweep):
    for run in sweep["runs"]:
        figures = run["capacity"]
        expected = None
        for step in sorted(run["steps"], key=lambda s: s["rate"]):
            if step["verdict"]["passed"] is None:
                continue
            if not step["verdict"]["passed"]:
                break
            expected = step["rate"]
        if figures["run_checks_failed"]:
            expected = None
        assert figures["rate"] == expected
        for step in run["steps"]:
            assert (step["verdict"]["reasons"] == []) is (step["verdict"]["passed"] is True)


@needs_redis
def test_one_node_with_redis_stops_its_redis_and_the_peer_has_none(sweep):
    hub, peer = sweep["runs"]
    assert hub["hubs"] == 1
    assert hub["redis"]["exit_status"] == 0
    assert not answers_ping(hub["redis"]["port"])
    assert "redis" not in peer
    assert [len(r["nodes"]) for r in sweep["runs"]] == [1, 1]
    for run in sweep["runs"]:
        assert all(s["deliver_latency_cross_node"]["count"] == 0 for s in run["steps"])


@needs_redis
def test_the_printed_report_shows_the_new_figures(sweep):
    for label in ("CPU ms per 1,000", "capacity msg/s", "within bound"):
        assert label in sweep["output"]
