"""Retention anchored to the wedding: which groups are due to be archived or purged, archiving
them, purging their messages and files in bounded batches, and deleting audit rows past
HUB_AUDIT_RETENTION_DAYS (docs/privacy.md, "Retention").

A group's anchor is its wedding date (its first moment, UTC), or without one its last activity
(the latest message of any of its threads, else its creation). It is archived
`archive_days_after_wedding` days after the anchor and purged `retention_days_after_wedding`
days after it. A legal hold stops both. Every write here re-reads the group's state in its own
transaction, so a hold set, or a date moved, between the actor's look and its write wins.

A purge deletes the messages and everything that refers to them (attachments' rows,
notifications and their deliveries, requests to acknowledge and acknowledgements, replies'
references) but keeps the threads with their `last_seq`: seqs are gap-free, so
`hub.storage.messages.history_kept_since` then tells a client rejoining from an old seq that
its history is gone (`recovered: false`). Read receipts are kept: they are positions (a seq and
a time), no content. Blobs go after the rows that name them, by the caller, as everywhere
(`hub.attachments.service`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from uuid import UUID

import msgspec

from hub.errors import Conflict, NotFound
from hub.storage.records import row_to
from hub.storage.sql import Op, execute, fetch, fetchrow, fetchval
from hub.storage.sqltext import placeholders

Anchor = Literal["wedding_date", "last_activity"]

# Messages deleted in one transaction of a purge: a wedding's thousands of messages (and their
# notifications and deliveries) are many short transactions, never one that holds the writer.
PURGE_BATCH = 500
AUDIT_BATCH = 5000

_STATE_COLUMNS = """g.id AS group_id, g.status, g.wedding_date, g.created_at, g.archived_at,
    g.retention_days_after_wedding, g.archive_days_after_wedding, g.legal_hold_at,
    g.legal_hold_by, g.legal_hold_reason, g.purged_at,
    (SELECT max(t.last_message_at) FROM messaging_threads AS t WHERE t.group_id = g.id)
        AS last_message_at"""


class RetentionState(msgspec.Struct, frozen=True):
    """A group's retention as stored, with what its dates are computed from."""

    group_id: UUID
    status: str
    created_at: datetime
    retention_days_after_wedding: int
    archive_days_after_wedding: int
    wedding_date: date | None = None
    archived_at: datetime | None = None
    legal_hold_at: datetime | None = None
    legal_hold_by: UUID | None = None
    legal_hold_reason: str | None = None
    purged_at: datetime | None = None
    last_message_at: datetime | None = None

    @property
    def anchor(self) -> Anchor:
        return "wedding_date" if self.wedding_date is not None else "last_activity"

    @property
    def anchored_at(self) -> datetime:
        """The moment the days are counted from: the wedding day's start (UTC), else the last
        message of any thread, else the group's creation."""
        if self.wedding_date is not None:
            return datetime.combine(self.wedding_date, time(0), UTC)
        return _aware(self.last_message_at or self.created_at)

    @property
    def archive_due(self) -> datetime:
        return self.anchored_at + timedelta(days=self.archive_days_after_wedding)

    @property
    def purge_due(self) -> datetime:
        return self.anchored_at + timedelta(days=self.retention_days_after_wedding)

    @property
    def held(self) -> bool:
        return self.legal_hold_at is not None

    def archive_is_due(self, now: datetime) -> bool:
        return (
            not self.held
            and self.status != "archived"
            and self.purged_at is None
            and now >= self.archive_due
        )

    def purge_is_due(self, now: datetime) -> bool:
        return not self.held and self.purged_at is None and now >= self.purge_due


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def retention_state(group_id: UUID) -> Op[RetentionState]:
    row = yield fetchrow(
        f"SELECT {_STATE_COLUMNS} FROM vendor_connection_groups AS g WHERE g.id = $1",  # noqa: S608 (constant columns)
        group_id,
    )
    if row is None:
        raise NotFound(f"group {group_id} not found")
    return row_to(row, RetentionState)


def candidates(today: date, *, after: UUID | None, limit: int) -> Op[list[RetentionState]]:
    """Groups that may be due on `today` (UTC), by id from `after`: not purged, not held, and
    with a wedding that has begun or no wedding date. Which of them are due is decided on the
    record (`archive_is_due`, `purge_is_due`), the same rules the REST answer shows."""
    sql = (
        f"SELECT {_STATE_COLUMNS} FROM vendor_connection_groups AS g "  # noqa: S608 (constant columns)
        "WHERE g.purged_at IS NULL AND g.legal_hold_at IS NULL "
        "AND (g.wedding_date IS NULL OR g.wedding_date <= $1)"
    )
    if after is None:
        rows = yield fetch(sql + " ORDER BY g.id LIMIT $2", today, limit)
    else:
        rows = yield fetch(sql + " AND g.id > $3 ORDER BY g.id LIMIT $2", today, limit, after)
    return [row_to(row, RetentionState) for row in rows]


def due_groups(now: datetime, *, batch: int = 500) -> Op[tuple[list[UUID], list[UUID]]]:
    """(due to be archived, due to be purged) at `now`, read in pages of `batch` groups."""
    archive, purge = [], []
    after: UUID | None = None
    while True:
        page = yield from candidates(now.date(), after=after, limit=batch)
        for state in page:
            if state.purge_is_due(now):
                purge.append(state.group_id)
            elif state.archive_is_due(now):
                archive.append(state.group_id)
        if len(page) < batch:
            return archive, purge
        after = page[-1].group_id


def _archive_group_and_threads(group_id: UUID, now: datetime) -> Op[int]:
    """The group read-only, and its threads archived too: a socket that joined before keeps
    posting with the decision it took then, and the append refuses an archived thread."""
    yield execute(
        "UPDATE vendor_connection_groups SET status = 'archived', archived_at = $2, "
        "updated_at = $2 WHERE id = $1 AND status <> 'archived'",
        group_id,
        now,
    )
    threads = yield fetch(
        "UPDATE messaging_threads SET status = 'archived', archived_at = $2, updated_at = $2 "
        "WHERE group_id = $1 AND status <> 'archived' RETURNING id",
        group_id,
        now,
    )
    return len(threads)


@dataclass(frozen=True, slots=True)
class Archived:
    group_id: UUID
    threads: int
    anchor: Anchor
    archive_due: datetime


def archive_if_due(group_id: UUID, now: datetime) -> Op[Archived | None]:
    """Archive the group if, as stored now, it is due (None when not: a hold, a new date)."""
    state = yield from retention_state(group_id)
    if not state.archive_is_due(now):
        return None
    threads = yield from _archive_group_and_threads(group_id, now)
    return Archived(group_id, threads, state.anchor, state.archive_due)


@dataclass(frozen=True, slots=True)
class PurgedBatch:
    """One transaction of a purge: what it deleted, the blobs its rows named (to delete once
    committed), and whether the group is now purged. `stopped`: it was no longer due (a hold)."""

    messages: int = 0
    attachments: int = 0
    notifications: int = 0
    blob_keys: tuple[str, ...] = ()
    purged: bool = False
    stopped: bool = False


def purge_batch(group_id: UUID, now: datetime, limit: int = PURGE_BATCH) -> Op[PurgedBatch]:
    """Delete up to `limit` of the group's messages with what refers to them; when none is
    left, its remaining uploads too, and the group is marked purged (and archived, if it was
    not yet). Call again until `purged` or `stopped`."""
    state = yield from retention_state(group_id)
    if not state.purge_is_due(now):
        return PurgedBatch(stopped=True)
    rows = yield fetch(
        "SELECT m.id FROM thread_messages AS m JOIN messaging_threads AS t ON t.id = m.thread_id "
        "WHERE t.group_id = $1 ORDER BY m.id LIMIT $2",
        group_id,
        limit,
    )
    ids = [row["id"] for row in rows]
    if ids:
        keys, attachments, notifications = yield from _delete_messages(ids)
        return PurgedBatch(len(ids), attachments, notifications, keys)
    # No message left: uploads never sent (their contents are the wedding's too), then the mark.
    uploads = yield fetch(
        "DELETE FROM message_attachments WHERE thread_id IN "
        "(SELECT id FROM messaging_threads WHERE group_id = $1) "
        "RETURNING storage_key, thumbnail_key",
        group_id,
    )
    yield from _archive_group_and_threads(group_id, now)
    # The couple's contact details (names, e-mail, phone, venue) were kept for the wedding:
    # they go with its messages, unless another wedding still names the same client.
    client_id = yield fetchval(
        "SELECT client_id FROM vendor_connection_groups WHERE id = $1", group_id
    )
    yield execute(
        "UPDATE vendor_connection_groups SET purged_at = $2, updated_at = $2, client_id = NULL "
        "WHERE id = $1",
        group_id,
        now,
    )
    if client_id is not None:
        yield execute(
            "DELETE FROM clients WHERE id = $1 AND NOT EXISTS "
            "(SELECT 1 FROM vendor_connection_groups WHERE client_id = $1)",
            client_id,
        )
    return PurgedBatch(attachments=len(uploads), blob_keys=_keys(uploads), purged=True)


def _keys(rows: Sequence[dict]) -> tuple[str, ...]:
    return tuple(
        key for row in rows for key in (row["storage_key"], row["thumbnail_key"]) if key is not None
    )


def _delete_messages(ids: Sequence[int]) -> Op[tuple[tuple[str, ...], int, int]]:
    """Delete these messages and every row that refers to them, children first (the foreign
    keys are checked at each statement). Webhook deliveries name their message only in their
    payload, so they are found there."""
    listed = placeholders(len(ids))
    yield execute(
        "DELETE FROM notification_deliveries WHERE notification_id IN "  # noqa: S608 (placeholders only)
        f"(SELECT id FROM user_notifications WHERE message_id IN ({listed}))",
        *ids,
    )
    yield execute(
        "DELETE FROM notification_deliveries WHERE channel = 'webhook' "  # noqa: S608 (placeholders only)
        f"AND CAST(payload ->> 'message_id' AS bigint) IN ({listed})",
        *ids,
    )
    notifications = yield fetch(
        f"DELETE FROM user_notifications WHERE message_id IN ({listed}) RETURNING id",  # noqa: S608 (placeholders only)
        *ids,
    )
    for table in ("ack_requests", "message_acknowledgements"):
        yield execute(f"DELETE FROM {table} WHERE message_id IN ({listed})", *ids)  # noqa: S608 (constant tables)
    attachments = yield fetch(
        f"DELETE FROM message_attachments WHERE message_id IN ({listed}) "  # noqa: S608 (placeholders only)
        "RETURNING storage_key, thumbnail_key",
        *ids,
    )
    # Replies within the batch, and later messages replying to it (a reply names a message
    # of its own thread, all of which go).
    yield execute(
        f"UPDATE thread_messages SET reply_to = NULL WHERE reply_to IN ({listed})",  # noqa: S608 (placeholders only)
        *ids,
    )
    yield execute(f"DELETE FROM thread_messages WHERE id IN ({listed})", *ids)  # noqa: S608 (placeholders only)
    return _keys(attachments), len(attachments), len(notifications)


def delete_audit_before(before: datetime, limit: int = AUDIT_BATCH) -> Op[int]:
    """Delete up to `limit` audit rows older than `before`, oldest first; how many went."""
    rows = yield fetch(
        "DELETE FROM vendor_communication_audit WHERE id IN "
        "(SELECT id FROM vendor_communication_audit WHERE at < $1 ORDER BY id LIMIT $2) "
        "RETURNING id",
        before,
        limit,
    )
    return len(rows)


# --- a group's settings and its legal hold -------------------------------------------------------


def set_retention(
    group_id: UUID, *, retention_days: int, archive_days: int, now: datetime
) -> Op[RetentionState]:
    """Store a group's days (checked by the caller: archive before retention); a purged group's
    data is gone, so its days no longer mean anything and cannot change."""
    state = yield from retention_state(group_id)
    if state.purged_at is not None:
        raise Conflict(f"group {group_id} was purged; its retention no longer applies")
    yield execute(
        "UPDATE vendor_connection_groups SET retention_days_after_wedding = $2, "
        "archive_days_after_wedding = $3, updated_at = $4 WHERE id = $1",
        group_id,
        retention_days,
        archive_days,
        now,
    )
    return (yield from retention_state(group_id))


def set_legal_hold(
    group_id: UUID, *, by: UUID | None, reason: str | None, now: datetime
) -> Op[tuple[RetentionState, RetentionState]]:
    """Place (a reason given) or lift (None) the hold; (before, after) for the audit row."""
    before = yield from retention_state(group_id)
    if before.purged_at is not None:
        raise Conflict(f"group {group_id} was purged; there is nothing left to hold")
    if reason is None:
        yield execute(
            "UPDATE vendor_connection_groups SET legal_hold_at = NULL, legal_hold_by = NULL, "
            "legal_hold_reason = NULL, updated_at = $2 WHERE id = $1",
            group_id,
            now,
        )
    else:
        yield execute(
            "UPDATE vendor_connection_groups SET legal_hold_at = $2, legal_hold_by = $3, "
            "legal_hold_reason = $4, updated_at = $2 WHERE id = $1",
            group_id,
            now,
            by,
            reason,
        )
    return before, (yield from retention_state(group_id))


def message_count_of_group(group_id: UUID) -> Op[int]:
    """Messages the group still stores (what a purge has left)."""
    value = yield fetchval(
        "SELECT count(*) FROM thread_messages AS m JOIN messaging_threads AS t "
        "ON t.id = m.thread_id WHERE t.group_id = $1",
        group_id,
    )
    return int(value)
