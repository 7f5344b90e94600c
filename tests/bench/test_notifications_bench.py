"""The notifications bench, end to end at a tiny size: the real tool
(`python -m bench.notifications`) starts its webhook receiver and a hub process, provisions a
group with webhooks over REST, posts plain and notifying messages and waits for every delivery.
Like the other benches' tests, these check that the counts and checks hold and that every figure
is there, never a timing."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bench.notifications.receiver import signature_matches
from hub.notifications.webhooks import new_secret, sign
from tests.bench.test_load_scenario import ROOT

MENTIONS = 3


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("notifications")
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.notifications",
            *("--seconds", "0.5", "--warmup", "0.2", "--concurrency", "2"),
            *("--senders", "2", "--threads", "2", "--drain-timeout", "60"),
            *("--out", str(out), "--quiet"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output
    result_file = out / "result.json"
    assert result_file.exists(), output
    return {"result": json.loads(result_file.read_text()), "output": completed.stdout, "out": out}


def test_every_check_passed(bench_run):
    result = bench_run["result"]
    assert result["passed"], result["checks"]
    assert all(result["checks"].values())
    assert "FAIL" not in bench_run["output"]


def test_every_acknowledged_message_is_stored(bench_run):
    result = bench_run["result"]
    plain, notifying = result["phases"]["plain"], result["phases"]["notifying"]
    assert plain["messages"] > 0 and notifying["messages"] > 0
    assert result["stored"]["total"] == result["acknowledged"]
    assert result["acknowledged"] >= plain["messages"] + notifying["messages"]
    for phase in (plain, notifying):
        assert phase["failures"] == {} and phase["duplicates_answered"] == 0


def test_the_notifying_messages_mention_three_users_and_the_plain_ones_nobody(bench_run):
    samples = bench_run["result"]["mention_samples"]
    assert samples["plain_mentions"] is None
    users = samples["notifying_mentions"]["users"]
    assert [u["name"] for u in users] == ["Ada Florist", "Ben Caterer", "Cleo Musician"]


def test_the_receiver_got_each_delivery_once_signed(bench_run):
    result = bench_run["result"]
    deliveries = result["deliveries"]
    assert deliveries["expected"] == MENTIONS * result["phases"]["notifying"]["messages"]
    assert deliveries["received"] == deliveries["expected"]
    assert deliveries["missing"] == 0 and deliveries["drain_complete"]
    assert deliveries["duplicates"] == 0
    assert deliveries["unexpected"] == 0 and deliveries["refused"] == 0
    assert deliveries["signature_invalid"] == 0 and deliveries["timestamp_invalid"] == 0
    assert deliveries["malformed"] == 0
    assert result["deliveries_during_plain"] == 0
    assert deliveries["lag_ms"]["count"] == deliveries["received"]


def test_the_hub_counted_the_deliveries_the_receiver_got(bench_run):
    result = bench_run["result"]
    webhook = result["hub_delivery_metrics"]["notifying_phase"]["webhook"]
    assert webhook["delivered"] == result["deliveries"]["received"]
    assert webhook["dead"] == 0
    in_app = result["hub_delivery_metrics"]["notifying_phase"]["in_app"]
    assert in_app["delivered"] == result["deliveries"]["expected"]  # one per user mentioned


def test_every_figure_is_reported(bench_run):
    result = bench_run["result"]
    for name in ("plain", "notifying"):
        phase = result["phases"][name]
        assert phase["msgs_per_s"] > 0
        assert phase["post_latency_ms"]["p50"] is not None
        assert phase["post_latency_ms"]["p99"] is not None
        assert phase["hub_cpu_ms_per_message"] is not None
        assert phase["bench_cpu_percent"] is not None
    assert result["notifying_vs_plain_msgs_per_s"] > 0
    deliveries = result["deliveries"]
    for figure in ("per_s_overall", "drain_s"):
        assert deliveries[figure] is not None
    assert deliveries["lag_ms"]["p50"] is not None and deliveries["lag_ms"]["p99"] is not None
    assert result["hub_settings"]["HUB_WEBHOOK_ALLOW_HOSTS"].startswith("127.0.0.1:")
    assert result["hub_exit_status"] == 0
    assert len(result["machine"]["load_average_at_start"]) == 3
    assert "notifying ÷ plain" in bench_run["output"]
    assert not list(bench_run["out"].glob("hub.db*"))  # removed without --keep-database


def test_the_receiver_checks_signatures_as_the_hub_signs():
    """The receiver recomputes the documented HMAC itself; the hub's signer must agree."""
    secret = new_secret().encode()
    body = b'{"id": "m1.mention.w1"}'
    header = sign(secret, 1_796_300_000, body)
    assert signature_matches(secret, "1796300000", header, body)
    assert not signature_matches(secret, "1796300001", header, body)
    assert not signature_matches(secret, "1796300000", header, body + b" ")
    assert not signature_matches(b"whsec_other", "1796300000", header, body)
    assert not signature_matches(secret, "", header, body)
