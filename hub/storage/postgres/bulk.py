"""PostgreSQL's bulk path for appending a batch of messages in a few round trips."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from hub.errors import Invalid
from hub.storage.records import SealedMessage, StoredMessage, row_to
from hub.storage.repository import append_messages_each, writable_thread_error
from hub.storage.sql import IntegrityError, Op, execute, fetch

_EXISTING = """
SELECT m.id, m.thread_id, m.seq, m.created_at, m.sender_user_id, m.client_msg_id
FROM thread_messages AS m
JOIN unnest($1::uuid[], $2::text[]) AS k (sender_user_id, client_msg_id)
  ON m.sender_user_id = k.sender_user_id AND m.client_msg_id = k.client_msg_id
"""

# Locking the threads in id order means two hub processes appending to overlapping threads
# always take the locks in the same order, and cannot deadlock on each other.
_LOCK_THREADS = """
SELECT id, status, last_seq FROM messaging_threads
WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE
"""

_REPLY_TARGETS = "SELECT id, thread_id FROM thread_messages WHERE id = ANY($1::bigint[])"

_INSERT = """
INSERT INTO thread_messages
    (thread_id, seq, sender_user_id, sender_org_id, kind, body_ciphertext, body_nonce,
     key_version, client_msg_id, reply_to, metadata, created_at)
SELECT t, s, u, o, k, c, n, v, cid, r, m::jsonb, $12
FROM unnest($1::uuid[], $2::bigint[], $3::uuid[], $4::uuid[], $5::text[], $6::bytea[],
            $7::bytea[], $8::int[], $9::text[], $10::bigint[], $11::text[])
     AS x (t, s, u, o, k, c, n, v, cid, r, m)
RETURNING id, thread_id, seq
"""

_BUMP = """
UPDATE messaging_threads AS t
SET last_seq = x.last_seq, last_message_at = $3, updated_at = $3
FROM unnest($1::uuid[], $2::bigint[]) AS x (id, last_seq)
WHERE t.id = x.id
"""

_encode = msgspec.json.Encoder().encode


def append_messages_bulk(
    messages: Sequence[SealedMessage], now: datetime
) -> Op[list[StoredMessage | Exception]]:
    """The same outcome as `append_messages_each`, message for message, in a few statements."""
    outcomes: list[Any] = [None] * len(messages)
    existing_rows = yield fetch(
        _EXISTING,
        [m.sender_user_id for m in messages],
        [m.client_msg_id for m in messages],
    )
    existing = {(r["sender_user_id"], r["client_msg_id"]): r for r in existing_rows}
    thread_rows = yield fetch(_LOCK_THREADS, sorted({m.thread_id for m in messages}))
    threads = {r["id"]: r for r in thread_rows}
    reply_ids = sorted({m.reply_to for m in messages if m.reply_to is not None})
    reply_threads: dict[int, UUID] = {}
    if reply_ids:
        rows = yield fetch(_REPLY_TARGETS, reply_ids)
        reply_threads = {r["id"]: r["thread_id"] for r in rows}

    last_seq = {thread_id: row["last_seq"] for thread_id, row in threads.items()}
    first_of: dict[tuple[UUID, str], int] = {}
    repeats: list[tuple[int, int]] = []
    inserts: list[tuple[int, SealedMessage, int]] = []
    for index, message in enumerate(messages):
        key = (message.sender_user_id, message.client_msg_id)
        thread = threads.get(message.thread_id)
        if key in existing:
            outcomes[index] = row_to({**existing[key], "duplicate": True}, StoredMessage)
        elif key in first_of:
            repeats.append((index, first_of[key]))
        elif thread is None or thread["status"] == "archived":
            outcomes[index] = writable_thread_error(
                message.thread_id, None if thread is None else thread["status"]
            )
        elif message.reply_to is not None and reply_threads.get(message.reply_to) != (
            message.thread_id
        ):
            outcomes[index] = Invalid(
                f"reply_to {message.reply_to} is not a message of thread {message.thread_id}"
            )
        else:
            last_seq[message.thread_id] += 1
            first_of[key] = index
            inserts.append((index, message, last_seq[message.thread_id]))

    if inserts:
        yield execute("SAVEPOINT bulk_append")
        try:
            rows = yield fetch(
                _INSERT,
                [m.thread_id for _, m, _ in inserts],
                [seq for _, _, seq in inserts],
                [m.sender_user_id for _, m, _ in inserts],
                [m.sender_org_id for _, m, _ in inserts],
                [m.kind for _, m, _ in inserts],
                [m.body_ciphertext for _, m, _ in inserts],
                [m.body_nonce for _, m, _ in inserts],
                [m.key_version for _, m, _ in inserts],
                [m.client_msg_id for _, m, _ in inserts],
                [m.reply_to for _, m, _ in inserts],
                [_encode(m.metadata).decode() for _, m, _ in inserts],
                now,
            )
            bumped = sorted({m.thread_id for _, m, _ in inserts})
            yield execute(_BUMP, bumped, [last_seq[t] for t in bumped], now)
        except IntegrityError:
            # Some row must fail on its own (a sender that does not exist, a concurrent twin
            # of a client_msg_id): undo the bulk insert and let each message stand alone.
            yield execute("ROLLBACK TO SAVEPOINT bulk_append")
            yield execute("RELEASE SAVEPOINT bulk_append")
            return (yield from append_messages_each(messages, now))
        yield execute("RELEASE SAVEPOINT bulk_append")
        ids = {(r["thread_id"], r["seq"]): r["id"] for r in rows}
        for index, message, seq in inserts:
            outcomes[index] = StoredMessage(
                id=ids[(message.thread_id, seq)],
                thread_id=message.thread_id,
                seq=seq,
                created_at=now,
            )

    for index, first in repeats:
        original = outcomes[first]
        if isinstance(original, StoredMessage):
            outcomes[index] = msgspec.structs.replace(original, duplicate=True)
        else:
            outcomes[index] = original
    return outcomes
