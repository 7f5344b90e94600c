"""Queries only tests ask: what a test reads back to check what the hub stored. They are written
like the hub's own operations (`hub.storage.sql`), but the hub has no use for them."""

from __future__ import annotations

from uuid import UUID

from hub.storage.presence import presence_rows
from hub.storage.records import Connection, PresenceRecord, ReceiptRecord, row_to
from hub.storage.sql import Op, fetch


def group_members(group_id: UUID) -> Op[list[Connection]]:
    rows = yield fetch(
        "SELECT * FROM vendor_connections WHERE group_id = $1 ORDER BY invited_at, organization_id",
        group_id,
    )
    return [row_to(row, Connection) for row in rows]


def read_receipts(thread_id: UUID) -> Op[list[ReceiptRecord]]:
    rows = yield fetch(
        "SELECT * FROM message_read_receipts WHERE thread_id = $1 ORDER BY user_id", thread_id
    )
    return [row_to(row, ReceiptRecord) for row in rows]


def thread_presence(thread_id: UUID) -> Op[list[PresenceRecord]]:
    presence = presence_rows(thread_id)
    rows = yield fetch(f"{presence.sql} ORDER BY {presence.order_by}", *presence.args)
    return [row_to(row, PresenceRecord) for row in rows]
