"""Acknowledgements: an organization confirming a message that asked for it, and the board
that shows, for one such message, which member organizations have confirmed and which have not.

The first user of an organization to acknowledge speaks for it; later ones get that first
acknowledgement back. Acknowledging ends the organization's reminders in the same transaction
(`ack_requests`, which `hub.notifications.escalation` works down).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

import msgspec

from hub.errors import Invalid, NotFound
from hub.storage.sql import Op, execute, fetch, fetchrow

AckState = Literal["acknowledged", "pending", "sender"]


class Acknowledgement(msgspec.Struct, frozen=True):
    """One organization's confirmation; `new` is false when it had already confirmed (this is
    the earlier confirmation, by whoever gave it)."""

    thread_id: UUID
    seq: int
    message_id: int
    organization_id: UUID
    user_id: UUID
    acknowledged_at: datetime
    new: bool
    user_name: str | None = None
    organization_name: str | None = None


class BoardEntry(msgspec.Struct, frozen=True):
    """A member organization on a message's board."""

    organization_id: UUID
    organization_name: str
    state: AckState
    user_id: UUID | None = None
    user_name: str | None = None
    acknowledged_at: datetime | None = None
    reminders_sent: int = 0


class Board(msgspec.Struct, frozen=True):
    thread_id: UUID
    seq: int
    message_id: int
    sender_org_id: UUID
    entries: list[BoardEntry]

    @property
    def pending(self) -> int:
        return sum(1 for e in self.entries if e.state == "pending")


_MESSAGE = """
SELECT id, sender_org_id, requires_ack, deleted_at FROM thread_messages
WHERE thread_id = $1 AND seq = $2
"""


def _message(thread_id: UUID, seq: int) -> Op[dict]:
    row = yield fetchrow(_MESSAGE, thread_id, seq)
    if row is None or row["deleted_at"] is not None:
        raise NotFound(f"message {seq} not found in thread {thread_id}")
    if not row["requires_ack"]:
        raise Invalid(f"message {seq} does not ask for acknowledgement")
    return row


def acknowledge(
    thread_id: UUID, seq: int, organization_id: UUID, user_id: UUID, now: datetime
) -> Op[Acknowledgement]:
    """Record that `user_id` confirmed message `seq` for `organization_id` (access already
    decided in the same transaction by the caller). Invalid for the sender's own organization
    and for a message that asked for no acknowledgement; NotFound when there is no message."""
    message = yield from _message(thread_id, seq)
    if message["sender_org_id"] == organization_id:
        raise Invalid(f"message {seq} was sent by your organization: the others acknowledge it")
    inserted = yield fetchrow(
        "INSERT INTO message_acknowledgements (message_id, organization_id, user_id, "
        "acknowledged_at) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT (message_id, organization_id) DO NOTHING RETURNING user_id",
        message["id"],
        organization_id,
        user_id,
        now,
    )
    new = inserted is not None
    row = yield fetchrow(
        "SELECT a.user_id, a.acknowledged_at, u.display_name AS user_name, "
        "o.name AS organization_name FROM message_acknowledgements AS a "
        "JOIN organizations AS o ON o.id = a.organization_id "
        "LEFT JOIN user_profiles AS u ON u.id = a.user_id "
        "WHERE a.message_id = $1 AND a.organization_id = $2",
        message["id"],
        organization_id,
    )
    if new:
        yield execute(
            "UPDATE ack_requests SET state = 'acknowledged', next_at = NULL "
            "WHERE message_id = $1 AND organization_id = $2 AND state = 'pending'",
            message["id"],
            organization_id,
        )
    return Acknowledgement(
        thread_id=thread_id,
        seq=seq,
        message_id=message["id"],
        organization_id=organization_id,
        user_id=row["user_id"],
        acknowledged_at=row["acknowledged_at"],
        new=new,
        user_name=row["user_name"],
        organization_name=row["organization_name"],
    )


_BOARD = """
SELECT c.organization_id, o.name AS organization_name, a.user_id,
       u.display_name AS user_name, a.acknowledged_at, r.reminders_sent
FROM vendor_connections AS c
JOIN organizations AS o ON o.id = c.organization_id
LEFT JOIN message_acknowledgements AS a
  ON a.message_id = $2 AND a.organization_id = c.organization_id
LEFT JOIN user_profiles AS u ON u.id = a.user_id
LEFT JOIN ack_requests AS r ON r.message_id = $2 AND r.organization_id = c.organization_id
WHERE c.group_id = $1 AND c.status = 'active'
ORDER BY o.name, c.organization_id
"""


def board(group_id: UUID, thread_id: UUID, seq: int) -> Op[Board]:
    """Every active member organization of the group with its confirmation of message `seq`
    (who and when), or pending; the sender's organization is marked as the sender."""
    message = yield from _message(thread_id, seq)
    rows = yield fetch(_BOARD, group_id, message["id"])
    entries = []
    for row in rows:
        if row["organization_id"] == message["sender_org_id"]:
            state: AckState = "sender"
        elif row["user_id"] is not None:
            state = "acknowledged"
        else:
            state = "pending"
        entries.append(
            BoardEntry(
                organization_id=row["organization_id"],
                organization_name=row["organization_name"],
                state=state,
                user_id=row["user_id"],
                user_name=row["user_name"],
                acknowledged_at=row["acknowledged_at"],
                reminders_sent=row["reminders_sent"] or 0,
            )
        )
    return Board(
        thread_id=thread_id,
        seq=seq,
        message_id=message["id"],
        sender_org_id=message["sender_org_id"],
        entries=entries,
    )
