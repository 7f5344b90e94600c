"""The audit trail: who did what to which group, written by the storage actor in the same
transaction as the change it records, and read back filtered."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from hub.storage.records import AuditEntry, AuditRecord, row_to
from hub.storage.sql import Op, executemany, fetch
from hub.storage.sqltext import Binder

_INSERT_AUDIT = """
INSERT INTO vendor_communication_audit
    (at, actor_user_id, actor_org_id, action, target_type, target_id, group_id, ip, user_agent,
     details)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
"""


def insert_audit(entries: Sequence[AuditEntry], now: datetime) -> Op[None]:
    yield executemany(
        _INSERT_AUDIT,
        [
            (
                now,
                e.actor_user_id,
                e.actor_org_id,
                e.action,
                e.target_type,
                e.target_id,
                e.group_id,
                e.ip,
                e.user_agent,
                e.details,
            )
            for e in entries
        ],
    )


def audit_rows(
    *,
    group_ids: Sequence[UUID] | None = None,
    actor_user_id: UUID | None = None,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    after_id: int = 0,
    limit: int = 100,
) -> Op[list[AuditRecord]]:
    """Audit rows oldest first, filtered; the filters are fixed SQL with bound values."""
    bind = Binder(after_id)
    clauses = ["id > $1"]
    if group_ids is not None:
        if not group_ids:
            return []
        clauses.append(f"group_id IN ({bind.many(group_ids)})")
    if actor_user_id is not None:
        clauses.append(f"actor_user_id = {bind(actor_user_id)}")
    if action is not None:
        clauses.append(f"action = {bind(action)}")
    if since is not None:
        clauses.append(f"at >= {bind(since)}")
    if until is not None:
        clauses.append(f"at < {bind(until)}")
    rows = yield fetch(
        "SELECT * FROM vendor_communication_audit WHERE "  # noqa: S608 (fixed clauses)
        + " AND ".join(clauses)
        + f" ORDER BY id LIMIT {bind(limit)}",
        *bind.args,
    )
    return [row_to(row, AuditRecord) for row in rows]
