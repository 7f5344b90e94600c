"""The load bench, end to end, at CI size: the real tool (`python -m bench.load`) starts a hub
on a fresh SQLite file, provisions through REST, drives 500 sockets from a separate swarm process
at 50 msg/s for 10 s, and checks the outcome. These tests assert only correctness — no loss, no
duplicates, in order, every acked message stored exactly once — never a timing: figures on a
shared 2-core CI machine are noise."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_bench(out: Path, *args: str) -> dict:
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.load",
            "--no-progress",
            "--no-plot",
            "--out",
            str(out),
            *args,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    result_file = out / "result.json"
    assert result_file.exists(), completed.stdout + completed.stderr
    result = json.loads(result_file.read_text())
    result["exit_status"] = completed.returncode
    result["output"] = completed.stdout + completed.stderr
    return result


def checks_of(run: dict) -> dict[str, dict]:
    return {check["name"]: check for check in run["checks"]}


@pytest.fixture(scope="module")
def hub_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("load")
    return run_bench(out, "--sockets", "500", "--rate", "50", "--duration", "10")


def test_every_check_passes_and_the_tool_says_so(hub_run):
    assert hub_run["passed"], hub_run["output"]
    assert hub_run["exit_status"] == 0, hub_run["output"]
    failed = [c for c in hub_run["runs"][0]["checks"] if c["passed"] is False]
    assert failed == []


def test_every_acknowledged_message_is_in_the_database_exactly_once(hub_run):
    check = checks_of(hub_run["runs"][0])["every acknowledged message stored exactly once"]
    assert check["passed"] is True, check["detail"]


def test_every_subscriber_got_every_message_once_and_in_order(hub_run):
    run = hub_run["runs"][0]
    delivery = run["delivery"]
    assert delivery["subscribers_checked"] == 500
    assert delivery["subscribers_ok"] == 500
    assert delivery["missing"] == delivery["duplicates"] == delivery["out_of_order"] == 0
    # 500 messages, each to the 9 other members of its thread.
    assert run["counters"]["acked"] == 500
    assert run["counters"]["delivered"] == 500 * 9


def test_no_socket_dropped_and_none_refused(hub_run):
    run = hub_run["runs"][0]
    assert run["drops"] == []
    assert run["counters"]["connect_failed"] == 0
    assert run["errors"] == {}


def test_the_result_carries_the_figures_a_reader_needs(hub_run):
    run = hub_run["runs"][0]
    assert run["provisioning"]["via"] == "rest"
    assert run["connect"]["count"] == 500
    assert run["steps"][0]["deliver_latency"]["count"] == 500 * 9
    assert run["memory"]["sockets"] == 500
    assert run["series"]["server"], "the server's CPU and RSS were sampled"
    assert "load_average_at_start" in hub_run["machine"]


@pytest.mark.parametrize("client", ["wire", "trio-websocket"])
def test_the_same_swarm_drives_the_peer_with_either_client(tmp_path, client):
    result = run_bench(
        tmp_path,
        *("--target", "peer", "--client", client),
        *("--sockets", "100", "--rate", "20", "--duration", "3"),
    )
    run = result["runs"][0]
    assert result["passed"], result["output"]
    assert checks_of(run)["every acknowledged message stored exactly once"]["passed"] is None
    assert run["delivery"]["subscribers_ok"] == 100
    assert run["counters"]["delivered"] == 60 * 9
