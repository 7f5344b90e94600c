"""PostgreSQL's statements for the bulk append: arrays in, through `unnest`.

One statement text per query whatever the batch size, so asyncpg prepares each once; each round
trip here costs more than the rows it carries at the batch sizes a live hub sees, so the lookup
and the insert are one statement each."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from hub.storage.append import INSERT_COLUMNS, MessageKey
from hub.storage.sql import Op, fetch

# Every statement here is written so that its plan probes indexes whatever the planner knows of
# the tables: asyncpg prepares a statement once per connection, and after five runs PostgreSQL may
# keep one generic plan for it, chosen for the table sizes of that moment. A join of the batch's
# arrays against a table that was empty when the writer connected became a hash join over a
# sequential scan of every message, per batch, for as long as the connection lived, many times
# slower than probing the index (docs/performance.md, decision register: "PostgreSQL append
# statements that probe indexes"). A LATERAL subquery with LIMIT 1 cannot be turned into such a
# join, and `id = ANY(...)` on the updated table gives the update an index to start from;
# tests/storage/test_write_plans.py checks the plans.

# The batch's existing (thread, sender, client_msg_id) rows and its threads, locked, in one round
# trip.
# Threads are locked in id order: two hub processes appending to overlapping threads take the
# locks in the same order and cannot deadlock on each other. NO KEY UPDATE because the bump
# changes no key: the lock still excludes every other append to the thread (that keeps seqs
# gap-free), but not the key-share locks of foreign-key checks, so presence, read receipts and
# attachments written for the thread on another connection (lane 0) neither wait for the
# batch nor hold it up. Rows are told apart by `kind`.
_LOOKUP = """
WITH locked AS (
    SELECT id, status, last_seq FROM messaging_threads
    WHERE id = ANY($4::uuid[]) ORDER BY id FOR NO KEY UPDATE
)
SELECT 'thread' AS kind, NULL::bigint AS id, l.id AS thread_id, l.status, l.last_seq,
       NULL::bigint AS seq, NULL::timestamptz AS created_at, NULL::uuid AS sender_user_id,
       NULL::text AS client_msg_id
FROM locked AS l
UNION ALL
SELECT 'message', m.id, m.thread_id, NULL, NULL, m.seq, m.created_at, m.sender_user_id,
       m.client_msg_id
FROM unnest($1::uuid[], $2::uuid[], $3::text[]) AS k (thread_id, sender_user_id, client_msg_id)
CROSS JOIN LATERAL (
    SELECT id, thread_id, seq, created_at, sender_user_id, client_msg_id FROM thread_messages
    WHERE thread_id = k.thread_id AND sender_user_id = k.sender_user_id
      AND client_msg_id = k.client_msg_id
    LIMIT 1
) AS m
"""

_REPLY_TARGETS = """
SELECT m.id, m.thread_id FROM unnest($1::bigint[]) AS r (id)
CROSS JOIN LATERAL (SELECT id, thread_id FROM thread_messages WHERE id = r.id LIMIT 1) AS m
"""

# The rows and their threads' new last_seq in one round trip (data-modifying CTEs always run).
_INSERT = f"""
WITH inserted AS (
    INSERT INTO thread_messages ({INSERT_COLUMNS}, created_at)
    SELECT t, s, u, o, k, c, n, v, cid, r, m::jsonb, a, $13
    FROM unnest($1::uuid[], $2::bigint[], $3::uuid[], $4::uuid[], $5::text[], $6::bytea[],
                $7::bytea[], $8::int[], $9::text[], $10::bigint[], $11::text[], $12::boolean[])
         AS x (t, s, u, o, k, c, n, v, cid, r, m, a)
    RETURNING id, thread_id, seq
), bumped AS (
    UPDATE messaging_threads AS t
    SET last_seq = b.last_seq, last_message_at = $13, updated_at = $13
    FROM unnest($14::uuid[], $15::bigint[]) AS b (id, last_seq)
    WHERE t.id = b.id AND t.id = ANY($14::uuid[])
)
SELECT id, thread_id, seq FROM inserted
"""  # noqa: S608 (constant column list)


class PostgresAppend:
    def lookup(
        self, keys: list[MessageKey], thread_ids: list[UUID]
    ) -> Op[tuple[list[dict], list[dict]]]:
        columns = [list(column) for column in zip(*keys, strict=True)]
        rows = yield fetch(_LOOKUP, *columns, thread_ids)
        existing = [r for r in rows if r["kind"] == "message"]
        threads = [
            {"id": r["thread_id"], "status": r["status"], "last_seq": r["last_seq"]}
            for r in rows
            if r["kind"] == "thread"
        ]
        return existing, threads

    def reply_targets(self, message_ids: list[int]) -> Op[list[dict]]:
        return (yield fetch(_REPLY_TARGETS, message_ids))

    def insert(
        self, rows: list[tuple[Any, ...]], last_seqs: list[tuple[UUID, int]], now: datetime
    ) -> Op[list[dict]]:
        columns = [list(column) for column in zip(*rows, strict=True)]
        return (
            yield fetch(
                _INSERT, *columns, now, [t for t, _ in last_seqs], [s for _, s in last_seqs]
            )
        )
