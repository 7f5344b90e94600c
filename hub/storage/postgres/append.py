"""PostgreSQL's statements for the bulk append: arrays in, through `unnest`.

One statement text per query whatever the batch size, so asyncpg prepares each once."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from hub.storage.append import INSERT_COLUMNS
from hub.storage.sql import Op, execute, fetch

_EXISTING = """
SELECT m.id, m.thread_id, m.seq, m.created_at, m.sender_user_id, m.client_msg_id
FROM thread_messages AS m
JOIN unnest($1::uuid[], $2::text[]) AS k (sender_user_id, client_msg_id)
  ON m.sender_user_id = k.sender_user_id AND m.client_msg_id = k.client_msg_id
"""

# Locking in id order: two hub processes appending to overlapping threads take the locks in the
# same order and cannot deadlock on each other.
_LOCK_THREADS = """
SELECT id, status, last_seq FROM messaging_threads
WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE
"""

_REPLY_TARGETS = "SELECT id, thread_id FROM thread_messages WHERE id = ANY($1::bigint[])"

_INSERT = f"""
INSERT INTO thread_messages ({INSERT_COLUMNS}, created_at)
SELECT t, s, u, o, k, c, n, v, cid, r, m::jsonb, $12
FROM unnest($1::uuid[], $2::bigint[], $3::uuid[], $4::uuid[], $5::text[], $6::bytea[],
            $7::bytea[], $8::int[], $9::text[], $10::bigint[], $11::text[])
     AS x (t, s, u, o, k, c, n, v, cid, r, m)
RETURNING id, thread_id, seq
"""  # noqa: S608 (constant column list)

_BUMP = """
UPDATE messaging_threads AS t
SET last_seq = x.last_seq, last_message_at = $3, updated_at = $3
FROM unnest($1::uuid[], $2::bigint[]) AS x (id, last_seq)
WHERE t.id = x.id
"""


class PostgresAppend:
    def existing(self, senders: list[UUID], client_msg_ids: list[str]) -> Op[list[dict]]:
        return (yield fetch(_EXISTING, senders, client_msg_ids))

    def lock_threads(self, thread_ids: list[UUID]) -> Op[list[dict]]:
        return (yield fetch(_LOCK_THREADS, thread_ids))

    def reply_targets(self, message_ids: list[int]) -> Op[list[dict]]:
        return (yield fetch(_REPLY_TARGETS, message_ids))

    def insert(self, rows: list[tuple[Any, ...]], now: datetime) -> Op[list[dict]]:
        columns = [list(column) for column in zip(*rows, strict=True)]
        return (yield fetch(_INSERT, *columns, now))

    def bump(self, last_seqs: list[tuple[UUID, int]], now: datetime) -> Op[None]:
        yield execute(_BUMP, [t for t, _ in last_seqs], [s for _, s in last_seqs], now)
