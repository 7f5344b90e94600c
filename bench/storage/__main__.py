"""Sustained message writes through the storage actor, with encryption on.

    python -m bench.storage --backend sqlite
    python -m bench.storage --backend postgres --database-url postgresql://postgres@127.0.0.1/postgres

Two phases per run:
  * saturation: `--writers` concurrent writers each append as fast as their acks come back,
    for `--seconds`; reports messages/s and ack latency percentiles.
  * fixed rate: messages offered at `--rate` per second (open loop: a late ack does not slow the
    offer) for `--seconds`; reports the achieved rate and ack latency percentiles at that rate.
Latency is submit → acknowledged-after-commit, per message. Each run uses a fresh database.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import trio

from hub.cli import tune_runtime
from hub.config import load_settings
from hub.storage import open_storage
from hub.storage.groups import create_group
from hub.storage.identities import upsert_identity
from hub.storage.messages import count_messages
from hub.storage.records import MessageDraft
from hub.storage.threads import create_thread, get_thread


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _prepare(storage, threads: int):
    user, org, group = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await storage.write(
        lambda now: upsert_identity(
            user_id=user,
            organization_id=org,
            username="bench",
            display_name="Bench",
            role="owner",
            now=now,
        )
    )
    await storage.write(
        lambda now: create_group(
            group_id=group, owner_organization_id=org, created_by=user, name="Bench", now=now
        )
    )
    thread_ids = []
    for i in range(threads):
        thread_id = uuid.uuid4()
        await storage.write(
            lambda now, t=thread_id, i=i: create_thread(
                thread_id=t, group_id=group, title=f"bench {i}", created_by=user, now=now
            )
        )
        thread_ids.append(thread_id)
    return user, org, thread_ids


def _message(user, org, thread_id, body: str) -> MessageDraft:
    return MessageDraft(
        thread_id=thread_id,
        sender_user_id=user,
        sender_org_id=org,
        client_msg_id=uuid.uuid4().hex,
        body=body,
    )


async def saturate(storage, user, org, thread_ids, *, writers: int, seconds: float, size: int):
    latencies: list[float] = []
    body = "x" * size
    deadline = trio.current_time() + seconds
    started = time.perf_counter()

    async def writer(index: int) -> None:
        thread_id = thread_ids[index % len(thread_ids)]
        while trio.current_time() < deadline:
            t0 = time.perf_counter()
            await storage.append_message(_message(user, org, thread_id, body))
            latencies.append(time.perf_counter() - t0)

    async with trio.open_nursery() as nursery:
        for index in range(writers):
            nursery.start_soon(writer, index)
    elapsed = time.perf_counter() - started
    return len(latencies) / elapsed, latencies


async def fixed_rate(storage, user, org, thread_ids, *, rate: float, seconds: float, size: int):
    latencies: list[float] = []
    body = "x" * size
    total = int(rate * seconds)
    started = time.perf_counter()

    async def one(i: int) -> None:
        t0 = time.perf_counter()
        await storage.append_message(_message(user, org, thread_ids[i % len(thread_ids)], body))
        latencies.append(time.perf_counter() - t0)

    async with trio.open_nursery() as nursery:
        offered = 0
        while offered < total:
            # Open loop: every millisecond, offer what is due by now, whatever earlier acks do.
            due = min(total, int((time.perf_counter() - started) * rate) + 1)
            for i in range(offered, due):
                nursery.start_soon(one, i)
            offered = due
            await trio.sleep(0.001)
    elapsed = time.perf_counter() - started
    return len(latencies) / elapsed, latencies


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


async def run(args) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="hub-bench-"))
    if args.backend == "sqlite":
        url = f"sqlite:///{workdir}/bench.db"
    else:
        url = await _fresh_postgres(args.database_url)
    settings = load_settings(
        {
            "HUB_DATABASE_URL": url,
            "HUB_JWT_SECRET": secrets.token_hex(32),
            "HUB_ENCRYPTION_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
            "HUB_VAR_DIR": str(workdir),
            "HUB_STORAGE_TIMEOUT_S": "30",
            **({"HUB_STORAGE_WRITERS": str(args.lanes)} if args.lanes else {}),
        }
    )
    async with open_storage(settings) as storage:
        user, org, thread_ids = await _prepare(storage, args.threads)
        # Warm up connections, statement caches and the thread cache.
        await saturate(storage, user, org, thread_ids, writers=50, seconds=1, size=args.size)
        phases: dict[str, dict] = {}
        if args.phase in ("both", "saturation"):
            commits_before = storage.stats.commits
            sat_rate, sat_lat = await saturate(
                storage,
                user,
                org,
                thread_ids,
                writers=args.writers,
                seconds=args.seconds,
                size=args.size,
            )
            sat_commits = storage.stats.commits - commits_before
            phases["saturation"] = {
                "writers": args.writers,
                "messages_per_s": round(sat_rate),
                "commits": sat_commits,
                "mean_batch": round(len(sat_lat) / max(1, sat_commits), 1),
                "ack_p50_ms": _ms(percentile(sat_lat, 0.5)),
                "ack_p99_ms": _ms(percentile(sat_lat, 0.99)),
            }
        if args.phase in ("both", "fixed"):
            fixed_rate_result, fixed_lat = await fixed_rate(
                storage, user, org, thread_ids, rate=args.rate, seconds=args.seconds, size=args.size
            )
            phases["fixed_rate"] = {
                "offered_per_s": args.rate,
                "achieved_per_s": round(fixed_rate_result),
                "ack_p50_ms": _ms(percentile(fixed_lat, 0.5)),
                "ack_p99_ms": _ms(percentile(fixed_lat, 0.99)),
                "ack_max_ms": _ms(max(fixed_lat)),
                "ack_mean_ms": _ms(statistics.fmean(fixed_lat)),
            }
        # Every acknowledged message is there, seqs gap-free per thread.
        total = 0
        for thread_id in thread_ids:
            thread = await storage.read(get_thread(thread_id))
            count = await storage.read(count_messages(thread_id))
            assert count == thread.last_seq, (count, thread.last_seq)
            total += count
    result = {
        "backend": args.backend,
        "lanes": len(storage.lane_stats),
        "machine": (
            f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        ),
        "message_bytes": args.size,
        "threads": args.threads,
        **phases,
        "messages_in_database": total,
    }
    if args.backend == "postgres":
        await _drop_postgres(args.database_url, url)
    return result


async def _fresh_postgres(admin_url: str) -> str:
    import trio_asyncio

    from hub.storage.postgres.connection import connect

    name = f"hub_bench_{uuid.uuid4().hex[:8]}"
    async with trio_asyncio.open_loop(), await connect(admin_url) as conn:
        await conn.execute(f'CREATE DATABASE "{name}"')
    return admin_url.rsplit("/", 1)[0] + "/" + name


async def _drop_postgres(admin_url: str, url: str) -> None:
    import trio_asyncio

    from hub.storage.postgres.connection import connect

    name = url.rsplit("/", 1)[1]
    async with trio_asyncio.open_loop(), await connect(admin_url) as conn:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.storage",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument(
        "--database-url",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="PostgreSQL server to create the bench database on",
    )
    parser.add_argument("--writers", type=int, default=2000, help="concurrent writers (2000)")
    parser.add_argument(
        "--rate",
        type=float,
        default=None,
        help="offered messages/s for the fixed-rate phase "
        "(default: 10000 on postgres, 5000 on sqlite)",
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each phase (10)")
    parser.add_argument("--threads", type=int, default=100, help="threads written to (100)")
    parser.add_argument("--size", type=int, default=200, help="message body bytes (200)")
    parser.add_argument("--phase", choices=["both", "saturation", "fixed"], default="both")
    parser.add_argument(
        "--lanes",
        type=int,
        help="PostgreSQL write connections (HUB_STORAGE_WRITERS; default: the hub's, 1)",
    )
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args(argv)
    if args.rate is None:
        args.rate = 10_000.0 if args.backend == "postgres" else 5_000.0
    tune_runtime()  # as `hub serve` runs: the storage actor measured as it runs in the hub
    result = trio.run(run, args)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
