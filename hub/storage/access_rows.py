"""The rows `hub.access` decides on: a thread with its group's state and the caller organization's
membership in one statement (`ThreadAccessRow`), and, for a reader opening the thread, the same
row carrying their read position, a page of history, the thread's presence and everyone's read
receipts. The decisions themselves live in `hub.access`; this module only reads, and hands each
row to the decision before anything else of it is used."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from hub.storage.messages import history
from hub.storage.presence import presence_rows
from hub.storage.receipts import reader_position, receipt_of, receipt_rows
from hub.storage.records import (
    PresenceRecord,
    ReaderPosition,
    Thread,
    ThreadAccessRow,
    ThreadReceipt,
    row_to,
)
from hub.storage.sql import Op, fetchrow

_ACCESS_ROW = """
    SELECT t.*, g.status AS group_status, g.owner_organization_id,
           c.role AS member_role, c.status AS member_status{reader}
    FROM messaging_threads AS t
    JOIN vendor_connection_groups AS g ON g.id = t.group_id
    LEFT JOIN vendor_connections AS c
           ON c.group_id = g.id AND c.organization_id = $2{receipts}
    WHERE t.id = $1
"""

_THREAD_ACCESS_ROW = _ACCESS_ROW.format(reader="", receipts="")

_THREAD_ACCESS_ROW_AND_READER = _ACCESS_ROW.format(
    reader=f",{reader_position('$3')}", receipts=f"\n    {receipt_of('$3')}"
)

# An access decision about a thread (`hub.access`): given the thread's row, or None when there
# is no such thread, it raises the HubError that refuses the caller.
Decide = Callable[[ThreadAccessRow | None], object]


def thread_access_row(thread_id: UUID, organization_id: UUID) -> Op[ThreadAccessRow | None]:
    """A thread with its group's state and the caller organization's membership, in one query:
    everything an access decision about this thread needs."""
    row = yield fetchrow(_THREAD_ACCESS_ROW, thread_id, organization_id)
    return None if row is None else _access_row(row)


@dataclass(frozen=True, slots=True)
class ThreadPageRows:
    """A thread as a reader opens it, before its messages are opened (`hub.storage.sealing`):
    `message_rows` are sealed rows of `hub.storage.messages.MESSAGE_SHAPE`, oldest first;
    `presence` is everyone's, offline included, by user id; `receipts` are everyone's, furthest
    read first (`hub.storage.receipts.receipt_rows`)."""

    access: ThreadAccessRow
    reader: ReaderPosition
    message_rows: list[dict[str, Any]]
    presence: list[PresenceRecord]
    receipts: list[ThreadReceipt]


def thread_page_rows(
    thread_id: UUID,
    organization_id: UUID,
    reader_id: UUID,
    decide: Decide,
    *,
    after_seq: int | None,
    before_seq: int | None,
    limit: int,
) -> Op[ThreadPageRows]:
    """The thread's access row with the reader's position (`last_read_seq`, `unread_count`, as
    `threads.thread_reader_state`), a page of history (`messages.history`), presence and read
    receipts nested in it: one statement, so one snapshot and one round trip (docs/storage.md,
    "Reads"). The rest of the row is read only once `decide` has allowed it."""
    page = history(thread_id, after_seq=after_seq, before_seq=before_seq, limit=limit)
    presence = presence_rows(thread_id)
    receipts = receipt_rows(thread_id)
    row = yield fetchrow(
        _THREAD_ACCESS_ROW_AND_READER,
        thread_id,
        organization_id,
        reader_id,
        nested=(page, presence, receipts),
    )
    access = None if row is None else _access_row(row)
    decide(access)
    assert row is not None and access is not None, "the decision refuses a missing thread"
    return ThreadPageRows(
        access=access,
        reader=ReaderPosition(
            last_read_seq=int(row["last_read_seq"]), unread_count=int(row["unread_count"])
        ),
        message_rows=row[page.name],
        # Built directly: the nested rows come decoded into these types (hub.storage.packed).
        presence=[
            PresenceRecord(
                thread_id=p["thread_id"],
                user_id=p["user_id"],
                status=p["status"],
                last_seen_at=p["last_seen_at"],
            )
            for p in row[presence.name]
        ],
        receipts=[
            ThreadReceipt(
                user_id=r["user_id"],
                display_name=r["display_name"],
                organization_id=r["organization_id"],
                last_read_seq=r["last_read_seq"],
                read_at=r["read_at"],
            )
            for r in row[receipts.name]
        ],
    )


def _access_row(row: dict[str, Any]) -> ThreadAccessRow:
    owner = row["owner_organization_id"]
    return ThreadAccessRow(
        # The thread's own columns; msgspec leaves the row's other columns aside.
        thread=row_to(row, Thread),
        group_status=row["group_status"],
        owner_organization_id=owner if isinstance(owner, UUID) else UUID(str(owner)),
        member_role=row["member_role"],
        member_status=row["member_status"],
    )
