"""Messages: appending one with the next gap-free seq of its thread (idempotent per sender and
client_msg_id), reply checks, and reading history. Bodies arrive and leave sealed; opening them
is `hub.storage.sealing`'s business. The bulk append of many at once is `hub.storage.append`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from hub.errors import HubError, Invalid, NotFound
from hub.storage.attachments import link_attachments
from hub.storage.batches import isolated
from hub.storage.notifications import notify_message
from hub.storage.records import SealedMessage, StoredMessage, row_to
from hub.storage.sql import Nested, Op, RowShape, fetch, fetchrow, fetchval

MESSAGE_BY_CLIENT_ID = """
SELECT id, thread_id, seq, created_at FROM thread_messages
WHERE thread_id = $1 AND sender_user_id = $2 AND client_msg_id = $3
"""

INSERT_MESSAGE = """
INSERT INTO thread_messages
    (thread_id, seq, sender_user_id, sender_org_id, kind, body_ciphertext, body_nonce,
     key_version, client_msg_id, reply_to, metadata, requires_ack, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
RETURNING id
"""


def writable_thread_error(thread_id: UUID, status: str | None) -> HubError:
    if status is None:
        return NotFound(f"thread {thread_id} not found")
    return Invalid(f"thread {thread_id} is archived and read-only")


def append_message(message: SealedMessage, now: datetime) -> Op[StoredMessage]:
    """Store one message with the next seq of its thread, or return the original when this
    sender already stored this client_msg_id in this thread.

    The seq comes from bumping `messaging_threads.last_seq` inside the write transaction: the
    row lock serializes writers, also across hub processes sharing one PostgreSQL, and a rolled
    back message gives its seq back, so seqs stay gap-free.
    """
    existing = yield fetchrow(
        MESSAGE_BY_CLIENT_ID, message.thread_id, message.sender_user_id, message.client_msg_id
    )
    if existing is not None:
        return row_to({**existing, "duplicate": True}, StoredMessage)
    seq = yield fetchval(
        """
        UPDATE messaging_threads
        SET last_seq = last_seq + 1, last_message_at = $2, updated_at = $2
        WHERE id = $1 AND status <> 'archived'
        RETURNING last_seq
        """,
        message.thread_id,
        now,
    )
    if seq is None:
        status = yield fetchval(
            "SELECT status FROM messaging_threads WHERE id = $1", message.thread_id
        )
        raise writable_thread_error(message.thread_id, status)
    if message.reply_to is not None:
        yield from check_reply_targets(message.thread_id, [message.reply_to])
    message_id = yield fetchval(
        INSERT_MESSAGE,
        message.thread_id,
        seq,
        message.sender_user_id,
        message.sender_org_id,
        message.kind,
        message.body_ciphertext,
        message.body_nonce,
        message.key_version,
        message.client_msg_id,
        message.reply_to,
        message.metadata,
        message.requires_ack,
        now,
    )
    if message.attachment_ids:
        yield from link_attachments(
            message_id, message.thread_id, message.sender_user_id, message.attachment_ids
        )
    stored = StoredMessage(id=message_id, thread_id=message.thread_id, seq=seq, created_at=now)
    if message.notifies:
        yield from notify_message(message, stored)
    return stored


def check_reply_targets(thread_id: UUID, reply_to: Sequence[int]) -> Op[None]:
    for target in reply_to:
        found = yield fetchval(
            "SELECT 1 FROM thread_messages WHERE id = $1 AND thread_id = $2", target, thread_id
        )
        if found is None:
            raise Invalid(f"reply_to {target} is not a message of thread {thread_id}")


def append_messages_each(
    messages: Sequence[SealedMessage], now: datetime
) -> Op[list[StoredMessage | Exception]]:
    """Append messages one by one, each in its own savepoint (the SQLite path, and PostgreSQL's
    fallback when its bulk path meets a row that must fail alone)."""
    outcomes: list[StoredMessage | Exception] = []
    for message in messages:
        outcome = yield from isolated(append_message(message, now))
        outcomes.append(outcome)
    return outcomes


# A page of history is the hub's most frequent read; its shape lets SQLite carry it in one piece.
# Its rows are a message's own columns and its sender's display name as it is now.
MESSAGE_SHAPE = RowShape(
    (
        ("id", int),
        ("thread_id", UUID),
        ("seq", int),
        ("sender_user_id", UUID),
        ("sender_org_id", UUID),
        ("kind", str),
        ("body_ciphertext", bytes),
        ("body_nonce", bytes),
        ("key_version", int),
        ("client_msg_id", str),
        ("reply_to", int | None),
        ("metadata", dict),
        ("created_at", datetime),
        ("edited_at", datetime | None),
        ("deleted_at", datetime | None),
        ("requires_ack", bool),
        ("change_no", int),
        ("deleted_by", UUID | None),
        ("sender_name", str),
    )
)

# What a history row is read from: each message joined to its sender's profile on the profile's
# primary key (sender_user_id is a non-null foreign key, so no message is lost by the join).
MESSAGES_WITH_SENDERS = "thread_messages AS m JOIN user_profiles AS u ON u.id = m.sender_user_id"
MESSAGE_COLUMNS = ", ".join(
    [f"m.{name}" for name in MESSAGE_SHAPE.names if name != "sender_name"]
    + ["u.display_name AS sender_name"]
)


def history(
    thread_id: UUID,
    *,
    after_seq: int | None = None,
    before_seq: int | None = None,
    limit: int = 100,
) -> Nested:
    """Sealed message rows of a thread with their senders' names, oldest first: the `limit`
    after `after_seq`, the `limit` just before `before_seq`, or (neither given) the latest
    `limit`."""
    select = f"SELECT {MESSAGE_COLUMNS} FROM {MESSAGES_WITH_SENDERS} WHERE m.thread_id = $1"  # noqa: S608 (constant columns)
    if after_seq is not None:
        sql, args = f"{select} AND m.seq > $2 ORDER BY m.seq LIMIT $3", (after_seq,)
    elif before_seq is not None:
        sql, args = f"{select} AND m.seq < $2 ORDER BY m.seq DESC LIMIT $3", (before_seq,)
    else:
        sql, args = f"{select} ORDER BY m.seq DESC LIMIT $2", ()
    return Nested("messages", sql, (thread_id, *args, limit), MESSAGE_SHAPE, "seq")


def message_rows(
    thread_id: UUID,
    *,
    after_seq: int | None = None,
    before_seq: int | None = None,
    limit: int = 100,
) -> Op[list[dict[str, Any]]]:
    """Sealed message rows of a thread in seq order: the `limit` just before `before_seq`, else
    the `limit` after `after_seq` (from the first message when neither is given)."""
    if before_seq is not None:
        page = history(thread_id, before_seq=before_seq, limit=limit)
    else:
        page = history(thread_id, after_seq=after_seq or 0, limit=limit)
    rows = yield fetch(page.sql, *page.args, shape=page.shape)
    return rows if before_seq is None else list(reversed(rows))


def history_kept_since(thread_id: UUID, since_seq: int) -> Op[bool]:
    """Whether every message the thread ever had after `since_seq` is still stored, so that a
    replay from there misses none. Seqs are gap-free, so the thread's last_seq says how many
    there were; a thread whose messages retention deleted, even all of them, is not kept.
    (The oldest stored seq alone cannot tell "none deleted" from "all deleted".)"""
    last_seq = yield fetchval("SELECT last_seq FROM messaging_threads WHERE id = $1", thread_id)
    if last_seq is None or last_seq <= since_seq:
        return True  # nothing after since_seq ever existed
    kept = yield fetchval(
        "SELECT count(*) FROM thread_messages WHERE thread_id = $1 AND seq > $2 AND seq <= $3",
        thread_id,
        since_seq,
        last_seq,
    )
    return kept == last_seq - since_seq


def count_messages(thread_id: UUID) -> Op[int]:
    value = yield fetchval("SELECT count(*) FROM thread_messages WHERE thread_id = $1", thread_id)
    return int(value)


def changed_rows(
    thread_id: UUID, since_change: int, upto_seq: int, limit: int
) -> Op[list[dict[str, Any]]]:
    """Sealed rows (`MESSAGE_SHAPE`) of the messages up to `upto_seq` edited or deleted after
    change `since_change`, in change order: what a client that was away replays."""
    rows = yield fetch(
        f"SELECT {MESSAGE_COLUMNS} FROM {MESSAGES_WITH_SENDERS} "  # noqa: S608 (constant columns)
        "WHERE m.thread_id = $1 AND m.change_no > $2 AND m.seq <= $3 ORDER BY m.change_no LIMIT $4",
        thread_id,
        since_change,
        upto_seq,
        limit,
        shape=MESSAGE_SHAPE,
    )
    return rows
