"""Kinds of write that the storage actor runs many at a time.

Consecutive requests of one kind in a group-commit batch are handed to that kind's operation
together. On PostgreSQL every statement is a network round trip (~0.5 ms on this project's
machine), so a thousand sockets connecting at once must not cost a thousand identity upserts of
three statements each: `executemany` pipelines the rows into one round trip per statement. If a
row is refused, the bulk statement is undone and each item runs alone in its own savepoint, so
one bad item still fails alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from hub.storage import batches, identities, presence
from hub.storage.sql import Op, StatementError, execute, executemany, fetch
from hub.storage.sqltext import placeholders


@dataclass(frozen=True, slots=True)
class Identity:
    """A user and organization as a verified token describes them."""

    user_id: UUID
    organization_id: UUID
    username: str
    display_name: str
    role: str
    email: str | None = None


@dataclass(frozen=True, slots=True)
class PresenceUpdate:
    """Users' presence in one thread (the thread actor coalesces them)."""

    thread_id: UUID
    statuses: dict[UUID, str]


def upsert_identities(items: Sequence[Identity], now: datetime) -> Op[list[Any]]:
    """Each item's outcome is whether that user was erased (their row was left alone; the
    caller refuses the token)."""
    # Sorted, so two hub processes upserting the same users lock rows in the same order.
    organizations = sorted({item.organization_id for item in items})
    yield executemany(
        identities.INSERT_ORGANIZATION,
        [(org, f"Organization {str(org)[:8]}", "other", now) for org in organizations],
    )
    yield executemany(
        identities.UPSERT_USER,
        [
            (i.user_id, i.organization_id, i.username, i.display_name, i.role, now, i.email)
            for i in sorted(items, key=lambda i: i.user_id)
        ],
    )
    users = sorted({item.user_id for item in items})
    rows = yield fetch(identities.ERASED_AMONG + f"({placeholders(len(users))})", *users)
    erased = {str(row["id"]) for row in rows}
    return [str(item.user_id) in erased for item in items]


def upsert_identity_each(item: Identity, now: datetime) -> Op[Any]:
    profile = yield from identities.upsert_identity(
        user_id=item.user_id,
        organization_id=item.organization_id,
        username=item.username,
        display_name=item.display_name,
        role=item.role,
        now=now,
        email=item.email,
    )
    return profile.erased_at is not None


def set_presences(items: Sequence[PresenceUpdate], now: datetime) -> Op[list[Any]]:
    rows = sorted(
        (item.thread_id, user_id, status, now)
        for item in items
        for user_id, status in item.statuses.items()
    )
    yield executemany(presence.UPSERT_PRESENCE, rows)
    return [None] * len(items)


def set_presence_each(item: PresenceUpdate, now: datetime) -> Op[Any]:
    yield from presence.set_presences(thread_id=item.thread_id, statuses=item.statuses, now=now)


BulkOp = Callable[[Sequence[Any], datetime], Op[list[Any]]]
EachOp = Callable[[Any, datetime], Op[Any]]

KINDS: dict[str, tuple[BulkOp, EachOp]] = {
    "identity": (upsert_identities, upsert_identity_each),
    "presence": (set_presences, set_presence_each),
}


def run_kind(kind: str, items: Sequence[Any], now: datetime) -> Op[list[Any]]:
    """All items at once; if a row is refused, each item alone in its own savepoint."""
    bulk, each = KINDS[kind]
    yield execute("SAVEPOINT bulk")
    try:
        outcomes = yield from bulk(items, now)
    except StatementError:
        yield execute("ROLLBACK TO SAVEPOINT bulk")
        yield execute("RELEASE SAVEPOINT bulk")
        outcomes = []
        for item in items:
            outcomes.append((yield from batches.isolated(each(item, now))))
        return outcomes
    yield execute("RELEASE SAVEPOINT bulk")
    return outcomes
