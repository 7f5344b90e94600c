"""One run: a hub process, a thread to upload to, then per size the copy, the upload and the
download in turn, `repeat` times, with the hub's RSS sampled during each exchange.

The hub is `python -m hub serve` started by `bench.load.server` (fresh database and secrets,
free ports, quiet logs), with the limits an upload bench must exceed raised: the largest file
size, the organization's quota and the request rates. Its thread is made through the REST API
(`bench.load.provision`): one owner, one group, one thread.

Each size's source file is printable ASCII text (libmagic reads it as text/plain, which the
hub accepts as declared), written and flushed to disk before anything is timed. Runs of the
three kinds alternate (copy, upload, download; copy, upload, download; …), so a change in the
machine's speed during a run falls on all three alike.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import statistics
import string
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import trio

from bench.attachments import client, memory
from bench.attachments.memory import MIB, RssSampler
from bench.load import server, system
from bench.load.provision import provision_rest
from bench.load.scenario import Member, ThreadPlan
from hub.auth import issue_token
from hub.config import load_settings

ROOT = Path(__file__).resolve().parents[2]
MB = 1_000_000  # MB/s are decimal megabytes per second
WARMUP_SIZE = MIB
DEFAULT_MAX_FILE_SIZE = 100 * MIB
DEFAULT_QUOTA = 10 * 1024**3
RSS_TARGET_SIZE = 100 * MIB
RSS_TARGET_MIB = 50.0
CONTENT_TYPE = "text/plain"


class BenchFailed(Exception):
    pass


@dataclass
class Options:
    sizes: list[int]
    repeats: list[int]
    database_url: str | None = None  # a PostgreSQL server; None: a fresh SQLite file
    workdir: Path | None = None  # None: a temporary directory, removed afterwards
    hub_env: list[str] = field(default_factory=list)
    sample_interval_s: float = 0.01
    progress: Callable[[str], None] = lambda line: None


@dataclass
class Source:
    path: Path
    size: int
    sha256: str


def default_repeat(size: int) -> int:
    return 20 if size < 10 * MIB else 3


def run(options: Options) -> dict:
    started_at = time.time()
    machine = system.machine()
    keep = options.workdir is not None
    run_dir = options.workdir or Path(tempfile.mkdtemp(prefix="hub-bench-attachments-"))
    run_dir.mkdir(parents=True, exist_ok=True)
    database_url = None
    node = None
    try:
        if options.database_url:
            database_url = server.create_postgres_database(options.database_url)
        else:
            for stale in run_dir.glob("hub.db*"):
                stale.unlink()
            database_url = f"sqlite:///{run_dir / 'hub.db'}"
        env = server.hub_settings_env(database_url, run_dir / "var")
        raised = _raised_settings(options)
        env.update(raised)
        sources = _write_sources(run_dir / "source", [WARMUP_SIZE, *options.sizes])
        node = server.start_hub(env, run_dir / "hub.log")
        owner, thread_id = _provision(env, node)
        measured = trio.run(_measure, options, env, node.pid, owner, thread_id, sources, run_dir)
    except BaseException:
        if node is not None and node.log_path is not None:
            options.progress(f"hub log ({node.log_path}):\n{_tail(node.log_path)}")
        raise
    finally:
        statuses = server.stop_nodes([node]) if node is not None else [None]
        if options.database_url and database_url:
            server.drop_postgres_database(database_url)
        if not keep:
            shutil.rmtree(run_dir, ignore_errors=True)
    return {
        "bench": "attachments",
        "command": [sys.executable, "-m", "bench.attachments", *sys.argv[1:]],
        "started_at": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started_at)),
        "commit": _commit(),
        "machine": machine,
        "load_average_at_end": os.getloadavg(),
        "database": "postgresql" if options.database_url else "sqlite",
        "hub_settings": raised,
        "hub_exit_status": statuses[0],
        "content_type": CONTENT_TYPE,
        "mb_bytes": MB,
        **measured,
    }


async def _measure(
    options: Options,
    env: dict[str, str],
    pid: int,
    token: str,
    thread_id: str,
    sources: dict[int, Source],
    run_dir: Path,
) -> dict:
    host, port = "127.0.0.1", int(env["HUB_HTTP_PORT"])
    base = server.REST_BASE
    copies = run_dir / "copies"
    (copies / "tmp").mkdir(parents=True, exist_ok=True)

    async def upload(source: Source) -> tuple[client.Answer, str]:
        answer = await client.upload(
            host,
            port,
            base,
            token,
            thread_id,
            source.path,
            source.size,
            filename=source.path.name,
            content_type=CONTENT_TYPE,
        )
        if answer.status != 201:
            raise BenchFailed(
                f"upload of {source.size} bytes answered {answer.status}: "
                f"{answer.body[:300].decode(errors='replace')}"
            )
        stored = _json(answer.body)
        if stored.get("size") != source.size or stored.get("sha256") != source.sha256:
            raise BenchFailed(
                f"the hub stored {stored} for a file of {source.size} bytes, sha256 {source.sha256}"
            )
        return answer, stored["id"]

    async def download(source: Source, attachment_id: str) -> client.Answer:
        answer = await client.download(host, port, base, token, attachment_id)
        if answer.status != 200 or answer.received != source.size:
            raise BenchFailed(
                f"download of {attachment_id} answered {answer.status} with "
                f"{answer.received} of {source.size} bytes"
            )
        if answer.headers.get("etag") != f'"{source.sha256}"':
            raise BenchFailed(
                f"download of {attachment_id}: ETag {answer.headers.get('etag')}, "
                f"not the file's sha256 {source.sha256}"
            )
        return answer

    # Warm-up: the upload and download paths' imports, caches and buffers, before any idle RSS.
    _, warm_id = await upload(sources[WARMUP_SIZE])
    await download(sources[WARMUP_SIZE], warm_id)
    await trio.to_thread.run_sync(_copy_once, sources[WARMUP_SIZE].path, copies)
    warm_idle = await trio.to_thread.run_sync(memory.idle_rss, pid)
    warm_hwm = memory.status(pid)["VmHWM"]

    results = []
    for size, repeat in zip(options.sizes, options.repeats, strict=True):
        source = sources[size]
        idle = await trio.to_thread.run_sync(memory.idle_rss, pid)
        copy_s, upload_s, download_s = [], [], []
        upload_peaks, download_peaks, befores = [], [], []
        samples = 0
        longest_gap = 0.0
        for rep in range(repeat):
            copy_s.append(await trio.to_thread.run_sync(_copy_once, source.path, copies))
            befores.append(memory.status(pid)["VmRSS"])
            with RssSampler(pid, options.sample_interval_s) as sampled:
                answer, attachment_id = await upload(source)
            upload_s.append(answer.elapsed_s)
            upload_peaks.append(sampled.peak)
            samples += sampled.samples
            longest_gap = max(longest_gap, sampled.longest_gap_s)
            with RssSampler(pid, options.sample_interval_s) as sampled:
                answer = await download(source, attachment_id)
            download_s.append(answer.elapsed_s)
            download_peaks.append(sampled.peak)
            options.progress(
                f"{_label(size)} {rep + 1}/{repeat}: copy {_rate(size, copy_s[-1]):.1f}, "
                f"upload {_rate(size, upload_s[-1]):.1f}, "
                f"download {_rate(size, download_s[-1]):.1f} MB/s; "
                f"upload peak RSS +{(upload_peaks[-1] - idle) / MIB:.1f} MiB"
            )
        after = memory.status(pid)
        copy = _rates(size, copy_s)
        up = _rates(size, upload_s)
        down = _rates(size, download_s)
        results.append(
            {
                "size_bytes": size,
                "size": _label(size),
                "repeat": repeat,
                "upload": up,
                "download": down,
                "copy": copy,
                "upload_vs_copy": _ratio(up["median"], copy["median"]),
                "download_vs_copy": _ratio(down["median"], copy["median"]),
                "memory": {
                    "idle_rss_mib": _mib(idle),
                    "upload_peak_rss_mib": _mib(max(upload_peaks)),
                    "upload_peak_above_idle_mib": _mib(max(upload_peaks) - idle),
                    "upload_peaks_above_idle_mib": [_mib(p - idle) for p in upload_peaks],
                    "rss_before_each_upload_mib": [_mib(b) for b in befores],
                    "download_peak_above_idle_mib": _mib(max(download_peaks) - idle),
                    "download_peaks_above_idle_mib": [_mib(p - idle) for p in download_peaks],
                    "rss_after_mib": _mib(after["VmRSS"]),
                    "vmhwm_after_mib": _mib(after["VmHWM"]),
                    "upload_samples": samples,
                    "longest_sample_gap_ms": round(longest_gap * 1000, 1),
                },
            }
        )
    target = next((r for r in results if r["size_bytes"] == RSS_TARGET_SIZE), None)
    return {
        "warmup": {
            "size_bytes": WARMUP_SIZE,
            "size": _label(WARMUP_SIZE),
            "idle_rss_mib": _mib(warm_idle),
            "vmhwm_mib": _mib(warm_hwm),
        },
        "sizes": results,
        "rss_target": None
        if target is None
        else {
            "size_bytes": RSS_TARGET_SIZE,
            "size": _label(RSS_TARGET_SIZE),
            "bound_mib": RSS_TARGET_MIB,
            "upload_peak_above_idle_mib": target["memory"]["upload_peak_above_idle_mib"],
            "met": target["memory"]["upload_peak_above_idle_mib"] <= RSS_TARGET_MIB,
        },
    }


def _raised_settings(options: Options) -> dict[str, str]:
    """The hub's limits are sized for real users; raise what the run must exceed, and say so in
    the result (with --hub-env's own)."""
    largest = max([WARMUP_SIZE, *options.sizes])
    planned = WARMUP_SIZE + sum(s * r for s, r in zip(options.sizes, options.repeats, strict=True))
    notes = {
        "HUB_MAX_FILE_SIZE": str(max(DEFAULT_MAX_FILE_SIZE, largest + MIB)),
        "HUB_ORG_STORAGE_QUOTA_BYTES": str(max(DEFAULT_QUOTA, 2 * planned)),
        **{f"HUB_RATE_{kind}_PER_S": "1000000" for kind in ("UPLOAD", "READ", "WRITE")},
        **{f"HUB_RATE_{kind}_BURST": "1000000" for kind in ("UPLOAD", "READ", "WRITE")},
    }
    for item in options.hub_env:
        key, _, value = item.partition("=")
        notes[key.strip()] = value.strip()
    return notes


def _provision(env: dict[str, str], node: server.Node) -> tuple[str, str]:
    """An owner's token and a thread of theirs, made over REST."""
    settings = load_settings(environ=env)
    user_id, org_id = uuid.uuid4(), uuid.uuid4()
    token = issue_token(settings, user_id=user_id, org_id=org_id, role="owner", name="bench")
    plan = ThreadPlan(members=[Member(user_id=str(user_id), org_id=str(org_id), token=token)])
    assert node.rest_url is not None
    provision_rest(node.rest_url, [plan], concurrency=1)
    return token, plan.thread_id


def _write_sources(directory: Path, sizes: list[int]) -> dict[int, Source]:
    """One text file per size, flushed to disk so that no write-back of it runs during the
    timed exchanges (its pages stay cached for the reads)."""
    directory.mkdir(parents=True, exist_ok=True)
    block = _text_block(MIB)
    sources = {}
    for size in sorted(set(sizes)):
        path = directory / f"bench-{size}.txt"
        digest = hashlib.sha256()
        with path.open("wb") as handle:
            left = size
            while left:
                piece = block[: min(left, len(block))]
                handle.write(piece)
                digest.update(piece)
                left -= len(piece)
            handle.flush()
            os.fsync(handle.fileno())
        sources[size] = Source(path, size, digest.hexdigest())
    return sources


def _text_block(size: int) -> bytes:
    """`size` bytes of lines of 79 random letters, digits and spaces."""
    rng = random.Random(20261203)
    alphabet = string.ascii_letters + string.digits + " " * 8
    line_count = -(-size // 80)
    text = "".join("".join(rng.choices(alphabet, k=79)) + "\n" for _ in range(line_count))
    return text.encode("ascii")[:size]


def _copy_once(source: Path, directory: Path) -> float:
    """The baseline: the file copied as the hub's local store writes a blob (into a temporary
    name, fsynced, renamed into place, the directory fsynced); seconds taken. The copy is
    removed afterwards, untimed."""
    temporary = directory / "tmp" / uuid.uuid4().hex
    final = directory / uuid.uuid4().hex
    began = time.perf_counter()
    shutil.copyfile(source, temporary)
    _fsync(temporary)
    os.replace(temporary, final)
    _fsync(directory)
    elapsed = time.perf_counter() - began
    final.unlink()
    return elapsed


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _rates(size: int, seconds: list[float]) -> dict:
    rates = [_rate(size, s) for s in seconds]
    return {
        "median": round(statistics.median(rates), 1),
        "min": round(min(rates), 1),
        "max": round(max(rates), 1),
        "runs_s": [round(s, 4) for s in seconds],
    }


def _rate(size: int, seconds: float) -> float:
    return size / seconds / MB


def _ratio(mine: float, theirs: float) -> float | None:
    return round(mine / theirs, 3) if theirs else None


def _mib(value: int) -> float:
    return round(value / MIB, 1)


def _label(size: int) -> str:
    for unit, factor in (("GiB", 1024**3), ("MiB", MIB), ("KiB", 1024)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size} B"


def _json(body: bytes) -> dict:
    try:
        return json.loads(body)
    except ValueError:
        raise BenchFailed(f"the upload's answer is not JSON: {body[:300]!r}") from None


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None
