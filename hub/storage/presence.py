"""Presence: who is online, away, busy or offline in each thread, as the thread actors report it."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from hub.storage.records import PresenceRecord, row_to
from hub.storage.sql import Nested, Op, RowShape, fetchrow

UPSERT_PRESENCE = """
INSERT INTO thread_presence (thread_id, user_id, status, last_seen_at)
VALUES ($1, $2, $3, $4)
ON CONFLICT (thread_id, user_id) DO UPDATE SET
    status = excluded.status, last_seen_at = excluded.last_seen_at
"""


def set_presence(
    *, thread_id: UUID, user_id: UUID, status: str, now: datetime
) -> Op[PresenceRecord]:
    row = yield fetchrow(
        UPSERT_PRESENCE + " RETURNING *",
        thread_id,
        user_id,
        status,
        now,
    )
    return row_to(row, PresenceRecord)


def set_presences(*, thread_id: UUID, statuses: dict[UUID, str], now: datetime) -> Op[None]:
    """Several users' presence in one thread, in one operation (the thread actor coalesces)."""
    for user_id, status in statuses.items():
        yield from set_presence(thread_id=thread_id, user_id=user_id, status=status, now=now)


PRESENCE_SHAPE = RowShape(
    (("thread_id", UUID), ("user_id", UUID), ("status", str), ("last_seen_at", datetime))
)


def presence_rows(thread_id: UUID) -> Nested:
    """Everyone's presence in a thread (offline included), by user id."""
    return Nested(
        "presence",
        f"SELECT {', '.join(PRESENCE_SHAPE.names)} FROM thread_presence WHERE thread_id = $1",  # noqa: S608 (constant columns)
        (thread_id,),
        PRESENCE_SHAPE,
        "user_id",
    )
