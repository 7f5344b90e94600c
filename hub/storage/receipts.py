"""Read receipts: each user's read high-water mark per thread, the SQL that turns it into a
reader's position (`last_read_seq`, `unread_count`) wherever threads are listed or opened, and
everyone's receipts as an opened thread shows them."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from hub.errors import Invalid, NotFound
from hub.storage.records import ReceiptRecord, row_to
from hub.storage.sql import Nested, Op, RowShape, fetchrow, fetchval

# The most receipts an opened thread shows (the furthest read first).
THREAD_RECEIPTS_MAX = 200


def mark_read(*, thread_id: UUID, user_id: UUID, seq: int, now: datetime) -> Op[ReceiptRecord]:
    """Raise a user's read high-water mark; a lower seq (a late frame) never lowers it."""
    last_seq = yield fetchval("SELECT last_seq FROM messaging_threads WHERE id = $1", thread_id)
    if last_seq is None:
        raise NotFound(f"thread {thread_id} not found")
    if seq < 0 or seq > last_seq:
        raise Invalid(f"seq {seq} is outside this thread's messages (0 to {last_seq})")
    row = yield fetchrow(
        """
        INSERT INTO message_read_receipts (thread_id, user_id, last_read_seq, read_at)
        VALUES ($1, $2, $3, $4)
        ON CONFLICT (thread_id, user_id) DO UPDATE SET
            last_read_seq = CASE
                WHEN excluded.last_read_seq > message_read_receipts.last_read_seq
                THEN excluded.last_read_seq ELSE message_read_receipts.last_read_seq END,
            read_at = excluded.read_at
        RETURNING *
        """,
        thread_id,
        user_id,
        seq,
        now,
    )
    return row_to(row, ReceiptRecord)


def reader_position(user: str) -> str:
    """The columns of a reader's position in thread `t`, with their receipt joined as `r`
    (`receipt_of`); `user` is the placeholder of the reader's id. Seqs are gap-free, so unread
    is the messages after the mark less the reader's own among them (counted from the
    `thread_messages_by_sender` index alone)."""
    return f"""
    coalesce(r.last_read_seq, 0) AS last_read_seq,
    t.last_seq - coalesce(r.last_read_seq, 0) - (SELECT count(*) FROM thread_messages AS m
        WHERE m.thread_id = t.id AND m.sender_user_id = {user}
          AND m.seq > coalesce(r.last_read_seq, 0)) AS unread_count"""  # noqa: S608 (placeholder)


def receipt_of(user: str) -> str:
    return f"LEFT JOIN message_read_receipts AS r ON r.thread_id = t.id AND r.user_id = {user}"


RECEIPT_SHAPE = RowShape(
    (
        ("user_id", UUID),
        ("display_name", str),
        ("organization_id", UUID),
        ("last_read_seq", int),
        ("read_at", datetime),
    )
)


def receipt_rows(thread_id: UUID) -> Nested:
    """Everyone's read receipt in a thread with who they are now (their profile, joined on its
    primary key): the `THREAD_RECEIPTS_MAX` furthest read, highest `last_read_seq` first (ties
    by user id)."""
    return Nested(
        "receipts",
        f"""
        SELECT r.user_id, u.display_name, u.organization_id, r.last_read_seq, r.read_at
        FROM message_read_receipts AS r JOIN user_profiles AS u ON u.id = r.user_id
        WHERE r.thread_id = $1
        ORDER BY r.last_read_seq DESC, r.user_id LIMIT {THREAD_RECEIPTS_MAX}
        """,  # noqa: S608 (a constant)
        (thread_id,),
        RECEIPT_SHAPE,
        "last_read_seq DESC, user_id",
    )
