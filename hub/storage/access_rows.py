"""The rows `hub.access` decides on: a thread with its group's state and the caller organization's
membership (and, when asked, the reader's position and nested rows) in one statement. The
decisions themselves live in `hub.access`; this module only reads."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from hub.storage.receipts import reader_position, receipt_of
from hub.storage.sql import Nested, Op, fetchrow

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


def thread_access_row(
    thread_id: UUID,
    organization_id: UUID,
    reader_id: UUID | None = None,
    *,
    nested: tuple[Nested, ...] = (),
) -> Op[dict[str, Any] | None]:
    """A thread with its group's state and the caller organization's membership, in one query:
    everything an access decision about this thread needs. With `reader_id`, also that user's
    read position (`last_read_seq`, `unread_count`, as `threads.thread_reader_state`), so that
    reading the thread needs no query of its own for it; with `nested`, rows of other queries (a
    page of history, presence) in the same statement."""
    if reader_id is None:
        return (yield fetchrow(_THREAD_ACCESS_ROW, thread_id, organization_id, nested=nested))
    return (
        yield fetchrow(
            _THREAD_ACCESS_ROW_AND_READER, thread_id, organization_id, reader_id, nested=nested
        )
    )
