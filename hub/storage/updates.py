"""Partial updates and archiving, the rules groups and threads share: only named columns change, and
an archived row is read-only. Table names come from here only, never from a caller."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from hub.errors import Conflict
from hub.storage.records import Group, Thread, row_to
from hub.storage.sql import Op, fetchrow
from hub.storage.sqltext import Binder

_UPDATABLE_TABLES: dict[str, tuple[str, type]] = {
    "group": ("vendor_connection_groups", Group),
    "thread": ("messaging_threads", Thread),
}


def partial_update(
    kind: str, before: Any, changes: dict[str, Any], updatable: Sequence[str], now: datetime
) -> Op[tuple[Any, Any]]:
    """Set only the columns named in `updatable` (a constant); an archived row is read-only."""
    table, record = _UPDATABLE_TABLES[kind]
    if before.status == "archived":
        raise Conflict(f"{kind} {before.id} is archived and read-only")
    bind = Binder(before.id, now)
    sets = [f"{column} = {bind(changes[column])}" for column in updatable if column in changes]
    if not sets:
        return before, before
    row = yield fetchrow(
        f"UPDATE {table} SET "  # noqa: S608 (table and columns from constants)
        + ", ".join([*sets, "updated_at = $2"])
        + " WHERE id = $1 RETURNING *",
        *bind.args,
    )
    return before, row_to(row, record)


def archive_row(kind: str, row_id: UUID, now: datetime) -> Op[Any]:
    table, record = _UPDATABLE_TABLES[kind]
    row = yield fetchrow(
        f"UPDATE {table} SET status = 'archived', archived_at = $2, updated_at = $2 "  # noqa: S608
        "WHERE id = $1 AND status <> 'archived' RETURNING *",
        row_id,
        now,
    )
    if row is None:
        raise Conflict(f"{kind} {row_id} is already archived")
    return row_to(row, record)
