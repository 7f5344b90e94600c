"""The pass/fail checks at the end of a run.

- persisted: every acknowledged message is in the database exactly once — queried directly, not
  through the hub: per thread, the stored seqs are exactly 1..N with no gap and no repeat, every
  acknowledged (seq, client_msg_id) is stored under that seq, and nothing is stored that was not
  acknowledged (a message stored but never acked is reported too).
- delivered: every subscriber that stayed connected received every message of its thread exactly
  once and in seq order (computed by the swarm processes, `Swarm.check_delivery`).
- connected: every socket connected, authenticated and joined.
- no drops: no socket was closed by the server or the network before the bench closed it.
- answered: every message sent got an ack (no error, no silence).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Any

from hub.config import database_backend, sqlite_path


@dataclass
class Check:
    name: str
    passed: bool | None  # None: not applicable (the peer has no database)
    detail: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def stored_messages(database_url: str, thread_ids: list[str]) -> dict[str, list[tuple[int, str]]]:
    """(seq, client_msg_id) of every message of the given threads, read from the database."""
    wanted = set(thread_ids)
    rows: list[tuple[str, int, str]]
    if database_backend(database_url) == "sqlite":
        with sqlite3.connect(f"file:{sqlite_path(database_url)}?mode=ro", uri=True) as db:
            rows = db.execute(
                "SELECT thread_id, seq, client_msg_id FROM thread_messages"
            ).fetchall()
    else:
        rows = asyncio.run(_postgres_rows(database_url))
    stored: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for thread_id, seq, client_msg_id in rows:
        if str(thread_id) in wanted:
            stored[str(thread_id)].append((int(seq), client_msg_id))
    return stored


async def _postgres_rows(database_url: str) -> list[tuple[str, int, str]]:
    import asyncpg

    conn = await asyncpg.connect(database_url, timeout=10)
    try:
        records = await conn.fetch("SELECT thread_id, seq, client_msg_id FROM thread_messages")
    finally:
        await conn.close()
    return [(str(r["thread_id"]), r["seq"], r["client_msg_id"]) for r in records]


def check_persisted(
    acked: dict[str, list[tuple[int, str]]], stored: dict[str, list[tuple[int, str]]]
) -> Check:
    acked_total = sum(map(len, acked.values()))
    stored_total = missing = misplaced = gaps = repeats = unacked = 0
    examples: list[str] = []
    for thread_id, acks in acked.items():
        rows = stored.get(thread_id, [])
        stored_total += len(rows)
        by_seq: dict[int, str] = {}
        for seq, client_msg_id in rows:
            if seq in by_seq:
                repeats += 1
            by_seq[seq] = client_msg_id
        cmids = [c for _, c in rows]
        repeats += len(cmids) - len(set(cmids))
        if by_seq and sorted(by_seq) != list(range(1, max(by_seq) + 1)):
            gaps += 1
        acked_seqs = set()
        for seq, client_msg_id in acks:
            acked_seqs.add(seq)
            if seq not in by_seq:
                missing += 1
            elif by_seq[seq] != client_msg_id:
                misplaced += 1
        unacked += len(set(by_seq) - acked_seqs)
        if (missing or misplaced or gaps or repeats) and len(examples) < 3:
            examples.append(f"thread {thread_id}")
    passed = not (missing or misplaced or gaps or repeats)
    detail = (
        f"{acked_total} acknowledged, {stored_total} stored; missing {missing}, "
        f"under another seq {misplaced}, threads with seq gaps {gaps}, repeated {repeats}, "
        f"stored but never acknowledged {unacked}"
    )
    if examples:
        detail += f" (e.g. {', '.join(examples)})"
    return Check("every acknowledged message stored exactly once", passed, detail)


def check_delivered(delivery: dict[str, Any]) -> Check:
    bad = (
        delivery["missing"]
        + delivery["duplicates"]
        + delivery["out_of_order"]
        + delivery["unacknowledged_delivered"]
        + delivery["content_conflicts"]
    )
    detail = (
        f"{delivery['subscribers_ok']}/{delivery['subscribers_checked']} subscribers complete; "
        f"missing {delivery['missing']}, duplicates {delivery['duplicates']}, "
        f"out of order {delivery['out_of_order']}, "
        f"unacknowledged but delivered {delivery['unacknowledged_delivered']}, "
        f"content conflicts {delivery['content_conflicts']}"
    )
    if delivery["examples"]:
        detail += "; " + "; ".join(delivery["examples"][:3])
    passed = bad == 0 and delivery["subscribers_checked"] > 0
    return Check("every subscriber got every message once, in order", passed, detail)


def check_connected(sockets: int, connect_failed: int, errors: dict[str, int]) -> Check:
    reasons = {k: v for k, v in errors.items() if k.startswith("connect:")}
    detail = f"{sockets - connect_failed}/{sockets} sockets connected, authenticated and joined"
    if reasons:
        detail += f" ({', '.join(f'{k[8:]}: {v}' for k, v in reasons.items())})"
    return Check("every socket connected and joined", connect_failed == 0, detail)


def check_no_drops(drops: list[dict[str, Any]]) -> Check:
    by_code: dict[str, int] = defaultdict(int)
    for drop in drops:
        by_code[str(drop.get("code"))] += 1
    detail = f"{len(drops)} unexpected disconnects"
    if by_code:
        detail += f" (close codes {dict(by_code)})"
    return Check("no unexpected socket drops", not drops, detail)


def check_answered(sent: int, acked: int, failed: int, unanswered: int, skips: int) -> Check:
    detail = (
        f"{sent} sent, {acked} acknowledged, {failed} refused with an error, "
        f"{unanswered} never answered, {skips} not sent (swarm backlog)"
    )
    return Check("every message sent was acknowledged", acked == sent and not skips, detail)
