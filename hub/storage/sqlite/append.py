"""SQLite's statements for the bulk append: expanded placeholder lists and executemany.

No row locks are needed: the storage actor's BEGIN IMMEDIATE holds SQLite's single write lock,
so no other writer (in this process or another) can touch the threads until commit. For the same
reason the new ids are exactly those above the largest id seen before the insert."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from hub.storage.append import INSERT_COLUMNS
from hub.storage.sql import Op, executemany, fetch, fetchval
from hub.storage.sqlite.types import timestamp

_INSERT = (
    f"INSERT INTO thread_messages ({INSERT_COLUMNS}, created_at) "  # noqa: S608 (constant)
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
)
_MAX_ID = "SELECT coalesce(max(id), 0) FROM thread_messages"
_BUMP = (
    "UPDATE messaging_threads SET last_seq = $2, last_message_at = $3, updated_at = $3 "
    "WHERE id = $1"
)


def _placeholders(count: int, start: int = 1) -> str:
    return ", ".join(f"${i}" for i in range(start, start + count))


class SqliteAppend:
    def lookup(
        self, senders: list[UUID], client_msg_ids: list[str], thread_ids: list[UUID]
    ) -> Op[tuple[list[dict], list[dict]]]:
        # Statements cost no round trip here; two plain ones read better than one union.
        existing = yield from self._existing(senders, client_msg_ids)
        threads = yield from self._threads(thread_ids)
        return existing, threads

    def _existing(self, senders: list[UUID], client_msg_ids: list[str]) -> Op[list[dict]]:
        unique_senders, unique_ids = sorted(set(senders)), sorted(set(client_msg_ids))
        sender_list = _placeholders(len(unique_senders))
        id_list = _placeholders(len(unique_ids), len(unique_senders) + 1)
        return (
            yield fetch(
                "SELECT id, thread_id, seq, created_at, sender_user_id, client_msg_id "  # noqa: S608
                f"FROM thread_messages WHERE sender_user_id IN ({sender_list}) "
                f"AND client_msg_id IN ({id_list})",
                *unique_senders,
                *unique_ids,
            )
        )

    def _threads(self, thread_ids: list[UUID]) -> Op[list[dict]]:
        return (
            yield fetch(
                "SELECT id, status, last_seq FROM messaging_threads "  # noqa: S608
                f"WHERE id IN ({_placeholders(len(thread_ids))})",
                *thread_ids,
            )
        )

    def reply_targets(self, message_ids: list[int]) -> Op[list[dict]]:
        return (
            yield fetch(
                "SELECT id, thread_id FROM thread_messages "  # noqa: S608
                f"WHERE id IN ({_placeholders(len(message_ids))})",
                *message_ids,
            )
        )

    def insert(
        self, rows: list[tuple[Any, ...]], last_seqs: list[tuple[UUID, int]], now: datetime
    ) -> Op[list[dict]]:
        before = yield fetchval(_MAX_ID)
        stamp = timestamp(now)  # formatted once for the whole batch
        yield executemany(_INSERT, [(*row, stamp) for row in rows])
        after = yield fetchval(_MAX_ID)
        yield executemany(_BUMP, [(thread_id, seq, stamp) for thread_id, seq in last_seqs])
        if after - before == len(rows):
            # Under the write lock, AUTOINCREMENT hands out consecutive ids in insert order.
            return [
                {"id": before + 1 + i, "thread_id": row[0], "seq": row[1]}
                for i, row in enumerate(rows)
            ]
        return (yield fetch("SELECT id, thread_id, seq FROM thread_messages WHERE id > $1", before))
