"""The attachments bench, end to end at tiny sizes: the real tool (`python -m bench.attachments`)
starts a hub process, makes a thread over REST, copies, uploads and downloads two small files and
reports every figure. Like the load bench's tests, these check that the figures are there and
consistent, never a timing."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import pytest

from bench.attachments.__main__ import parse_size
from bench.attachments.memory import MIB, RssSampler, status
from bench.attachments.run import default_repeat
from tests.bench.test_load_scenario import ROOT

SIZES = [64 * 1024, 256 * 1024]


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("attachments")
    result_file = out / "result.json"
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.attachments",
            *("--sizes", "64KiB,256KiB", "--repeat", "1"),
            *("--workdir", str(out / "run"), "--json", str(result_file)),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output
    assert result_file.exists(), output
    return {"result": json.loads(result_file.read_text()), "output": completed.stdout, "out": out}


def test_every_size_has_its_speeds_and_ratios(bench_run):
    result = bench_run["result"]
    assert [row["size_bytes"] for row in result["sizes"]] == SIZES
    for row in result["sizes"]:
        assert row["repeat"] == 1
        for kind in ("copy", "upload", "download"):
            figures = row[kind]
            assert figures["median"] > 0 and figures["min"] > 0 and figures["max"] > 0, row
            assert figures["min"] <= figures["median"] <= figures["max"]
            assert len(figures["runs_s"]) == 1 and figures["runs_s"][0] > 0
        assert row["upload_vs_copy"] > 0 and row["download_vs_copy"] > 0


def test_the_hub_s_memory_was_sampled(bench_run):
    result = bench_run["result"]
    assert result["warmup"]["idle_rss_mib"] > 0 and result["warmup"]["vmhwm_mib"] > 0
    for row in result["sizes"]:
        memory = row["memory"]
        assert memory["idle_rss_mib"] > 0
        assert memory["upload_peak_rss_mib"] > 0
        assert memory["vmhwm_after_mib"] >= memory["upload_peak_rss_mib"]
        assert memory["upload_samples"] >= 2
        assert len(memory["upload_peaks_above_idle_mib"]) == 1
    assert result["rss_target"] is None, "the target is judged on 100 MiB uploads only"


def test_the_run_is_described_and_the_hub_stopped_cleanly(bench_run):
    result = bench_run["result"]
    assert result["hub_exit_status"] == 0
    assert result["database"] == "sqlite"
    assert "load_average_at_start" in result["machine"]
    assert int(result["hub_settings"]["HUB_MAX_FILE_SIZE"]) > max(SIZES)
    assert (bench_run["out"] / "run" / "hub.log").exists(), "--workdir is kept"


def test_the_tables_are_printed(bench_run):
    output = bench_run["output"]
    for text in ("Attachments: MB/s", "Hub RSS (MiB)", "64 KiB", "256 KiB", "Load average"):
        assert text in output, output


def test_sizes_and_default_repeats():
    assert parse_size("64KiB") == 65536
    assert parse_size("100 MiB") == 100 * MIB
    assert parse_size("4096") == 4096
    assert default_repeat(MIB) == 20
    assert default_repeat(100 * MIB) == 3
    for bad in ("0", "1MB", "ten", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_size(bad)


def test_the_sampler_sees_a_short_peak_of_another_process():
    """The child holds 64 MiB for 0.3 s, then says when it has let go: the check of the freed
    memory waits for that word, not for a time a loaded machine may overrun."""
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            'import sys, time; sys.stdin.readline(); b = b"x" * (64 << 20); '
            'time.sleep(0.3); del b; print("freed", flush=True); time.sleep(30)',
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert child.stdin is not None and child.stdout is not None
        time.sleep(0.5)
        before = status(child.pid)["VmRSS"]
        with RssSampler(child.pid, 0.01) as sampled:
            child.stdin.write(b"go\n")
            child.stdin.flush()
            assert child.stdout.readline() == b"freed\n"
        assert sampled.peak - before >= 60 * MIB
        assert status(child.pid)["VmRSS"] - before < 8 * MIB, "the bytes were freed"
    finally:
        child.kill()
        child.wait()
