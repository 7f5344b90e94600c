"""Threads of a group and their listings with each reader's position; a thread's `last_seq` is
its message counter (see `hub.storage.messages`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from hub.errors import Invalid, NotFound
from hub.storage.receipts import reader_position, receipt_of
from hub.storage.records import ReaderPosition, Thread, ThreadListing, row_to
from hub.storage.sql import Op, fetch, fetchrow, fetchval
from hub.storage.sqltext import Binder
from hub.storage.updates import archive_row, partial_update

_INSERT_THREAD = """
INSERT INTO messaging_threads
    (id, group_id, title, thread_type, priority, status, created_by, last_seq,
     created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, 'open', $6, 0, $7, $7)
RETURNING *
"""


def create_thread(
    *,
    thread_id: UUID,
    group_id: UUID,
    title: str,
    created_by: UUID,
    now: datetime,
    thread_type: str = "general",
    priority: str = "normal",
) -> Op[Thread]:
    group_status = yield fetchval(
        "SELECT status FROM vendor_connection_groups WHERE id = $1", group_id
    )
    if group_status is None:
        raise NotFound(f"group {group_id} not found")
    if group_status != "active":
        raise Invalid(f"group {group_id} is archived and read-only")
    row = yield fetchrow(
        _INSERT_THREAD, thread_id, group_id, title, thread_type, priority, created_by, now
    )
    return row_to(row, Thread)


def get_thread(thread_id: UUID) -> Op[Thread]:
    row = yield fetchrow("SELECT * FROM messaging_threads WHERE id = $1", thread_id)
    if row is None:
        raise NotFound(f"thread {thread_id} not found")
    return row_to(row, Thread)


THREAD_UPDATABLE = ("title", "priority", "status")


def update_thread(
    thread_id: UUID, changes: dict[str, Any], now: datetime
) -> Op[tuple[Thread, Thread]]:
    """Partial update of title, priority and status (open/resolved); returns (before, after).
    Archiving goes through `archive_thread`; an archived thread is read-only."""
    before = yield from get_thread(thread_id)
    return (yield from partial_update("thread", before, changes, THREAD_UPDATABLE, now))


def archive_thread(thread_id: UUID, now: datetime) -> Op[Thread]:
    yield from get_thread(thread_id)  # NotFound when it is gone
    return (yield from archive_row("thread", thread_id, now))


_PRIORITY_RANK_SQL = (
    "CASE t.priority WHEN 'urgent' THEN 0 WHEN 'high' THEN 1 WHEN 'normal' THEN 2 ELSE 3 END"
)

_THREAD_STATS = reader_position("$1")


def thread_rows(
    *,
    user_id: UUID,
    group_ids: Sequence[UUID],
    status: str | None = None,
    priority: str | None = None,
    thread_type: str | None = None,
    title_contains: str | None = None,
    updated_since: datetime | None = None,
    by_priority: bool = False,
    after: tuple[Any, ...] | None = None,
    limit: int = 50,
) -> Op[list[ThreadListing]]:
    """Threads of the given groups with the caller's unread count, most recently active first
    (urgent first, then by activity, with `by_priority`). Without a status filter, archived
    threads are left out. `after` is the sort key of the previous page's last row:
    (updated_at, id), or (priority_rank, updated_at, id) with `by_priority`."""
    if not group_ids:
        return []
    bind = Binder(user_id)
    clauses = [f"t.group_id IN ({bind.many(group_ids)})"]
    if status is not None:
        clauses.append(f"t.status = {bind(status)}")
    else:
        clauses.append("t.status <> 'archived'")
    if priority is not None:
        clauses.append(f"t.priority = {bind(priority)}")
    if thread_type is not None:
        clauses.append(f"t.thread_type = {bind(thread_type)}")
    if title_contains:
        pattern = (
            title_contains.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        )
        clauses.append(f"lower(t.title) LIKE {bind('%' + pattern + '%')} ESCAPE '\\'")
    if updated_since is not None:
        clauses.append(f"t.updated_at >= {bind(updated_since)}")
    if after is not None:
        *rank, updated_at, last_id = after
        at, tid = bind(updated_at), bind(last_id)
        activity = f"(t.updated_at < {at} OR (t.updated_at = {at} AND t.id < {tid}))"
        if by_priority:
            r = bind(rank[0])
            activity = (
                f"({_PRIORITY_RANK_SQL} > {r} OR ({_PRIORITY_RANK_SQL} = {r} AND {activity}))"
            )
        clauses.append(activity)
    order = "t.updated_at DESC, t.id DESC"
    if by_priority:
        order = f"{_PRIORITY_RANK_SQL}, {order}"
    rows = yield fetch(
        f"SELECT t.*, {_PRIORITY_RANK_SQL} AS priority_rank, {_THREAD_STATS} "  # noqa: S608
        "FROM messaging_threads AS t "
        f"{receipt_of('$1')} "
        f"WHERE {' AND '.join(clauses)} ORDER BY {order} LIMIT {bind(limit)}",
        *bind.args,
    )
    return [
        ThreadListing(
            thread=row_to(row, Thread),
            reader=_reader_position_of(row),
            priority_rank=int(row["priority_rank"]),
        )
        for row in rows
    ]


def thread_reader_state(thread_id: UUID, user_id: UUID) -> Op[ReaderPosition]:
    """The caller's read position in a thread and how many messages of others follow it."""
    row = yield fetchrow(
        f"SELECT {reader_position('$2')} FROM messaging_threads AS t "  # noqa: S608 (fixed)
        f"{receipt_of('$2')} WHERE t.id = $1",
        thread_id,
        user_id,
    )
    return _reader_position_of(row)


def _reader_position_of(row: dict[str, Any]) -> ReaderPosition:
    return ReaderPosition(
        last_read_seq=int(row["last_read_seq"]), unread_count=int(row["unread_count"])
    )


def thread_ids_of_group(group_id: UUID) -> Op[list[UUID]]:
    rows = yield fetch("SELECT id FROM messaging_threads WHERE group_id = $1 ORDER BY id", group_id)
    return [row["id"] for row in rows]


def last_seqs(thread_ids: Sequence[UUID]) -> Op[dict[UUID, int]]:
    """Each thread's last stored seq, in one query: the seq check of a node's live threads
    (hub.actors.seqcheck) finds what a lost publish never brought."""
    if not thread_ids:
        return {}
    bind = Binder()
    rows = yield fetch(
        "SELECT id, last_seq FROM messaging_threads "  # noqa: S608 (placeholders only)
        f"WHERE id IN ({bind.many(thread_ids)})",
        *bind.args,
    )
    return {row["id"]: row["last_seq"] for row in rows}
