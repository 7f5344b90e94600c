"""The outbox's working half: claiming due deliveries, what each needs to be sent, and their
outcomes (`hub.actors.dispatcher` drives it; `hub.storage.notifications` writes the rows).

A claim is a lease: the delivery's `next_attempt_at` moves to the lease's end and its attempt
is counted, in one statement, before anything is sent. A node that dies mid-delivery therefore
loses nothing: the lease runs out and the delivery is due again, on whichever node claims it
first. Two nodes claiming at once cannot take the same row: the UPDATE's own conditions are
checked again against a row another transaction has just claimed (PostgreSQL re-evaluates
them after the row lock; SQLite has one writer), and a claimed row is no longer due.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal
from uuid import UUID

from hub.storage.messages import MESSAGE_COLUMNS, MESSAGE_SHAPE, MESSAGES_WITH_SENDERS
from hub.storage.sql import Op, execute, fetch, fetchval
from hub.storage.sqltext import placeholders

Channel = Literal["in_app", "email", "webhook"]

_CLAIM = """
UPDATE notification_deliveries SET next_attempt_at = $2, attempts = attempts + 1
WHERE id IN (
    SELECT id FROM notification_deliveries
    WHERE status = 'pending' AND next_attempt_at <= $1
    ORDER BY next_attempt_at, id LIMIT $3
) AND status = 'pending' AND next_attempt_at <= $1
RETURNING id, channel, notification_id, webhook_id, event, payload, idempotency_key, urgent,
          attempts, created_at
"""


@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery this node holds until its lease ends."""

    id: int
    channel: Channel
    event: str
    idempotency_key: str
    urgent: bool
    attempts: int  # counting this one
    created_at: datetime
    notification_id: int | None
    webhook_id: UUID | None
    payload: dict[str, Any]


def claim_due(now: datetime, lease_until: datetime, limit: int) -> Op[list[Claimed]]:
    rows = yield fetch(_CLAIM, now, lease_until, limit)
    return sorted(
        (
            Claimed(
                id=r["id"],
                channel=r["channel"],
                event=r["event"],
                idempotency_key=r["idempotency_key"],
                urgent=bool(r["urgent"]),
                attempts=r["attempts"],
                created_at=r["created_at"],
                notification_id=r["notification_id"],
                webhook_id=r["webhook_id"],
                payload=r["payload"] or {},
            )
            for r in rows
        ),
        key=lambda c: c.id,
    )


def next_due() -> Op[datetime | None]:
    """When the earliest pending delivery is due (None: nothing pending)."""
    # The column itself, not min(): SQLite gives an aggregate back as text.
    return (
        yield fetchval(
            "SELECT next_attempt_at FROM notification_deliveries WHERE status = 'pending' "
            "ORDER BY next_attempt_at LIMIT 1"
        )
    )


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of a claimed delivery: `delivered`, `retry` (at `at`), `held` (quiet
    hours until `at`: not an attempt), or `dead` (it keeps failing, or cannot succeed)."""

    id: int
    kind: Literal["delivered", "retry", "held", "dead"]
    at: datetime | None = None
    error: str | None = None


def record_outcomes(outcomes: Sequence[Outcome], now: datetime) -> Op[None]:
    for outcome in outcomes:
        if outcome.kind == "delivered":
            yield execute(
                "UPDATE notification_deliveries SET status = 'delivered', delivered_at = $2, "
                "last_error = NULL WHERE id = $1 AND status = 'pending'",
                outcome.id,
                now,
            )
        elif outcome.kind == "dead":
            yield execute(
                "UPDATE notification_deliveries SET status = 'dead', last_error = $2 "
                "WHERE id = $1 AND status = 'pending'",
                outcome.id,
                outcome.error,
            )
        else:
            # Held for quiet hours: the claim's attempt is given back.
            yield execute(
                "UPDATE notification_deliveries SET next_attempt_at = $2, last_error = $3, "
                "attempts = attempts - $4 WHERE id = $1 AND status = 'pending'",
                outcome.id,
                outcome.at,
                outcome.error,
                1 if outcome.kind == "held" else 0,
            )


# --- what a delivery is about ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Subject:
    """A notification's user and what it is about: everything the in-app frame and the e-mail
    say, but the message itself (opened separately, from `message_row`)."""

    notification_id: int
    user_id: UUID
    user_name: str
    email: str | None
    reason: str
    urgent: bool
    created_at: datetime
    group_id: UUID
    group_name: str
    wedding_date: date | None
    thread_id: UUID
    thread_title: str
    seq: int
    message_id: int
    quiet_hours_start: str | None
    quiet_hours_end: str | None
    time_zone: str


_SUBJECTS = """
SELECT n.id AS notification_id, n.user_id, u.display_name AS user_name, u.email, n.reason,
       n.urgent, n.created_at, n.group_id, g.name AS group_name, g.wedding_date, n.thread_id,
       t.title AS thread_title, n.seq, n.message_id, p.quiet_hours_start, p.quiet_hours_end,
       coalesce(p.time_zone, 'UTC') AS time_zone
FROM user_notifications AS n
JOIN user_profiles AS u ON u.id = n.user_id
JOIN vendor_connection_groups AS g ON g.id = n.group_id
JOIN messaging_threads AS t ON t.id = n.thread_id
LEFT JOIN vendor_notification_preferences AS p ON p.user_id = n.user_id
WHERE n.id IN ({ids})
"""


def subjects(notification_ids: Sequence[int]) -> Op[dict[int, Subject]]:
    if not notification_ids:
        return {}
    ids = sorted(set(notification_ids))
    rows = yield fetch(_SUBJECTS.format(ids=placeholders(len(ids))), *ids)
    return {r["notification_id"]: Subject(**{**r, "urgent": bool(r["urgent"])}) for r in rows}


def message_rows_by_id(message_ids: Sequence[int]) -> Op[list[dict[str, Any]]]:
    """Sealed rows (`MESSAGE_SHAPE`) of these messages, for `Sealing.open_rows`."""
    if not message_ids:
        return []
    ids = sorted(set(message_ids))
    return (
        yield fetch(
            f"SELECT {MESSAGE_COLUMNS} FROM {MESSAGES_WITH_SENDERS} "  # noqa: S608 (constant columns)
            f"WHERE m.id IN ({placeholders(len(ids))})",
            *ids,
            shape=MESSAGE_SHAPE,
        )
    )


@dataclass(frozen=True, slots=True)
class Hook:
    id: UUID
    organization_id: UUID
    url: str
    secret_sealed: str
    deleted: bool


def hooks(webhook_ids: Sequence[UUID]) -> Op[dict[UUID, Hook]]:
    if not webhook_ids:
        return {}
    ids = sorted(set(webhook_ids))
    rows = yield fetch(
        "SELECT id, organization_id, url, secret_sealed, deleted_at FROM organization_webhooks "  # noqa: S608 (placeholders only)
        f"WHERE id IN ({placeholders(len(ids))})",
        *ids,
    )
    return {
        r["id"]: Hook(
            r["id"], r["organization_id"], r["url"], r["secret_sealed"], r["deleted_at"] is not None
        )
        for r in rows
    }


_CONTEXT = """
SELECT m.id AS message_id, m.thread_id, m.seq, t.title AS thread_title, t.priority,
       t.group_id, g.name AS group_name, g.wedding_date
FROM thread_messages AS m
JOIN messaging_threads AS t ON t.id = m.thread_id
JOIN vendor_connection_groups AS g ON g.id = t.group_id
WHERE m.id IN ({ids})
"""


def message_contexts(message_ids: Sequence[int]) -> Op[dict[int, dict[str, Any]]]:
    """Thread and group of these messages (what a webhook delivery says about where)."""
    if not message_ids:
        return {}
    ids = sorted(set(message_ids))
    rows = yield fetch(_CONTEXT.format(ids=placeholders(len(ids))), *ids)
    return {r["message_id"]: r for r in rows}


# --- the dead letters (`hub notifications dead-letter`) ------------------------------------------


def dead_letters(limit: int = 100) -> Op[list[dict[str, Any]]]:
    return (
        yield fetch(
            "SELECT id, channel, event, idempotency_key, attempts, last_error, created_at "
            "FROM notification_deliveries WHERE status = 'dead' ORDER BY id LIMIT $1",
            limit,
        )
    )


def retry_dead(ids: Sequence[int] | None, now: datetime) -> Op[int]:
    """Make dead deliveries (these, or all with None) pending again, due now, with their
    attempts counted afresh; returns how many."""
    if ids is None:
        rows = yield fetch(
            "UPDATE notification_deliveries SET status = 'pending', attempts = 0, "
            "next_attempt_at = $1 WHERE status = 'dead' RETURNING id",
            now,
        )
    elif not ids:
        return 0
    else:
        rows = yield fetch(
            "UPDATE notification_deliveries SET status = 'pending', attempts = 0, "  # noqa: S608 (placeholders only)
            f"next_attempt_at = $1 WHERE status = 'dead' AND id IN ({placeholders(len(ids), 2)}) "
            "RETURNING id",
            now,
            *ids,
        )
    return len(rows)


def quiet_hours_of(user_ids: Sequence[UUID]) -> Op[dict[UUID, tuple[str | None, str | None, str]]]:
    """(start, end, time zone) of these users' quiet hours; users without preferences have
    none and are left out."""
    if not user_ids:
        return {}
    ids = sorted(set(user_ids))
    rows = yield fetch(
        "SELECT user_id, quiet_hours_start, quiet_hours_end, time_zone "  # noqa: S608 (placeholders only)
        f"FROM vendor_notification_preferences WHERE user_id IN ({placeholders(len(ids))})",
        *ids,
    )
    return {
        r["user_id"]: (r["quiet_hours_start"], r["quiet_hours_end"], r["time_zone"]) for r in rows
    }
