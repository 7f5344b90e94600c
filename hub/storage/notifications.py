"""The notifications a message causes, decided and written in the transaction that stores it.

This is the outbox's writing half (docs/notifications.md): who is told (mentioned users, the
users of mentioned organizations, and for a message that asks for acknowledgement every
member organization but the sender's), through which channels (each user's preferences), and
how urgently, all read and written beside the message's own rows. A crash can therefore neither
lose a notification of a stored message nor leave one for a message that was rolled back; the
dispatcher (`hub.notifications.dispatcher`) delivers what is here at least once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from uuid import UUID

from hub.notifications.mentions import Named
from hub.notifications.policy import EscalationPolicy, is_urgent, next_reminder, policy_of
from hub.storage.records import SealedMessage, StoredMessage
from hub.storage.sql import Op, execute, fetch, fetchrow, fetchval
from hub.storage.sqltext import placeholders

# Why a user is told, strongest first: one notification a user per message, for the strongest.
REASONS = ("ack_request", "mention", "org_mention")
# The channels beyond the in-app inbox (a hub without SMTP delivers no email).
OUTWARD = ("email", "webhook")

_CONTEXT = """
SELECT t.group_id, t.priority, t.thread_type, g.wedding_date, g.escalation_policy
FROM messaging_threads AS t JOIN vendor_connection_groups AS g ON g.id = t.group_id
WHERE t.id = $1
"""

# Every user the hub knows of the group's active member organizations (an erased user is
# nobody's audience any more), with their preferences
# (no row: the defaults) and whether they muted the thread.
_AUDIENCE = """
SELECT u.id, u.organization_id, u.role, u.email,
       coalesce(p.in_app_enabled, TRUE) AS in_app_enabled,
       coalesce(p.email_enabled, TRUE) AS email_enabled,
       coalesce(p.webhook_enabled, TRUE) AS webhook_enabled,
       coalesce(p.urgent_only, FALSE) AS urgent_only,
       coalesce(p.mention_alerts, TRUE) AS mention_alerts,
       p.consent_at,
       mu.user_id IS NOT NULL AS muted
FROM vendor_connections AS c
JOIN user_profiles AS u ON u.organization_id = c.organization_id
LEFT JOIN vendor_notification_preferences AS p ON p.user_id = u.id
LEFT JOIN thread_mutes AS mu ON mu.thread_id = $2 AND mu.user_id = u.id
WHERE c.group_id = $1 AND c.status = 'active' AND u.erased_at IS NULL
"""

_MEMBER_ORGS = """
SELECT organization_id FROM vendor_connections WHERE group_id = $1 AND status = 'active'
"""

_WEBHOOKS = """
SELECT w.id, w.organization_id, w.events
FROM organization_webhooks AS w
JOIN vendor_connections AS c
  ON c.organization_id = w.organization_id AND c.group_id = $1 AND c.status = 'active'
WHERE w.deleted_at IS NULL
"""


@dataclass(frozen=True, slots=True)
class Recipient:
    """A user who may be told, with what their preferences allow."""

    id: UUID
    organization_id: UUID
    role: str
    email: str | None
    in_app: bool
    email_ok: bool  # email on, consent given, and an address known
    webhook: bool
    urgent_only: bool
    mention_alerts: bool
    muted: bool

    @classmethod
    def of(cls, row: dict[str, Any]) -> Recipient:
        email = row["email"]
        return cls(
            id=row["id"],
            organization_id=row["organization_id"],
            role=row["role"],
            email=email,
            in_app=bool(row["in_app_enabled"]),
            email_ok=bool(row["email_enabled"]) and row["consent_at"] is not None and bool(email),
            webhook=bool(row["webhook_enabled"]),
            urgent_only=bool(row["urgent_only"]),
            mention_alerts=bool(row["mention_alerts"]),
            muted=bool(row["muted"]),
        )

    def accepts(self, reason: str, urgent: bool) -> bool:
        """Whether this user is told at all for `reason`: a request to acknowledge gets through
        a muted thread (it asks them to act), mentions do not; `urgent_only` lets only urgent
        ones through; mention alerts off silences mentions."""
        if self.urgent_only and not urgent:
            return False
        if reason in ("mention", "org_mention"):
            return self.mention_alerts and not self.muted
        return True


@dataclass(frozen=True, slots=True)
class Context:
    group_id: UUID
    priority: str
    thread_type: str
    wedding_date: date | None
    policy: EscalationPolicy


def read_context(thread_id: UUID) -> Op[Context]:
    row = yield fetchrow(_CONTEXT, thread_id)
    return Context(
        group_id=row["group_id"],
        priority=row["priority"],
        thread_type=row["thread_type"],
        wedding_date=row["wedding_date"],
        policy=policy_of(row["escalation_policy"]),
    )


def read_audience(group_id: UUID, thread_id: UUID) -> Op[list[Recipient]]:
    rows = yield fetch(_AUDIENCE, group_id, thread_id)
    return [Recipient.of(row) for row in rows]


def notify_message(message: SealedMessage, stored: StoredMessage) -> Op[None]:
    """Write what a just-inserted message causes: its acknowledgement requests (one per member
    organization but the sender's, with the first reminder's time), and a notification per user
    told, each with its deliveries (in-app, email, the organization's webhooks)."""
    context = yield from read_context(message.thread_id)
    audience = [
        r
        for r in (yield from read_audience(context.group_id, message.thread_id))
        if r.id != message.sender_user_id
    ]
    now = stored.created_at
    urgent = is_urgent(
        priority=context.priority,
        thread_type=context.thread_type,
        kind=message.kind,
        wedding_date=context.wedding_date,
        now=now,
        policy=context.policy,
    )
    mentioned_users = set(message.mentions.user_ids)
    mentioned_orgs = set(message.mentions.org_ids)
    reasons: dict[UUID, str] = {}
    for user in audience:
        if user.id in mentioned_users:
            reasons[user.id] = "mention"
        elif user.organization_id in mentioned_orgs:
            reasons[user.id] = "org_mention"
    if message.requires_ack:
        member_orgs = yield fetch(_MEMBER_ORGS, context.group_id)
        asked = [
            r["organization_id"]
            for r in member_orgs
            if r["organization_id"] != message.sender_org_id
        ]
        targets = _ack_targets(asked, audience, mentioned_users)
        yield from _write_ack_requests(message, stored, context, asked, targets, now)
        for org_id in asked:
            everyone = [u.id for u in audience if u.organization_id == org_id]
            for user_id in targets[org_id] or everyone:
                reasons[user_id] = "ack_request"
    told = [
        (user, reasons[user.id])
        for user in audience
        if user.id in reasons and user.accepts(reasons[user.id], urgent)
    ]
    yield from write_notifications(
        told,
        context,
        thread_id=message.thread_id,
        message_id=stored.id,
        seq=stored.seq,
        urgent=urgent,
        now=now,
        key=f"m{stored.id}",
        outward=message.outward,
    )


def _ack_targets(
    asked: Sequence[UUID], audience: Sequence[Recipient], mentioned: set[UUID]
) -> dict[UUID, list[UUID]]:
    """Per organization asked, the users the message mentioned there (empty: it named nobody
    there, and all its users are the targets)."""
    targets: dict[UUID, list[UUID]] = {org_id: [] for org_id in asked}
    for user in audience:
        if user.id in mentioned and user.organization_id in targets:
            targets[user.organization_id].append(user.id)
    return targets


def _write_ack_requests(
    message: SealedMessage,
    stored: StoredMessage,
    context: Context,
    asked: Sequence[UUID],
    targets: dict[UUID, list[UUID]],
    now: datetime,
) -> Op[None]:
    if not asked:
        return
    due = next_reminder(context.policy, context.wedding_date, now, 0)
    state = "pending" if due is not None else "expired"
    width = 9
    rows = []
    args: list[Any] = []
    for index, org_id in enumerate(asked):
        rows.append(f"({placeholders(width, 1 + index * width)})")
        args += [
            stored.id,
            org_id,
            context.group_id,
            message.thread_id,
            [str(u) for u in targets[org_id]],
            state,
            0,
            due,
            now,
        ]
    yield execute(
        "INSERT INTO ack_requests (message_id, organization_id, group_id, thread_id, targets, "  # noqa: S608 (placeholders only)
        f"state, reminders_sent, next_at, created_at) VALUES {', '.join(rows)}",
        *args,
    )


def write_notifications(
    told: Sequence[tuple[Recipient, str]],
    context: Context,
    *,
    thread_id: UUID,
    message_id: int,
    seq: int,
    urgent: bool,
    now: datetime,
    key: str,
    outward: Iterable[str],
) -> Op[None]:
    """A notification row per user told, and its deliveries: in-app and email per user, and
    one delivery per webhook of each organization with a user told (the receiver learns which
    users). `key` makes the idempotency keys: unique per message, or per reminder."""
    if not told:
        return
    width = 8
    rows = []
    args: list[Any] = []
    for index, (user, reason) in enumerate(told):
        rows.append(f"({placeholders(width, 1 + index * width)})")
        args += [user.id, context.group_id, thread_id, message_id, seq, reason, urgent, now]
    inserted = yield fetch(
        "INSERT INTO user_notifications (user_id, group_id, thread_id, message_id, seq, reason, "  # noqa: S608 (placeholders only)
        f"urgent, created_at) VALUES {', '.join(rows)} RETURNING id, user_id",
        *args,
    )
    ids = {row["user_id"]: row["id"] for row in inserted}
    outward = set(outward)
    deliveries: list[tuple[Any, ...]] = []
    for user, reason in told:
        notification_id = ids[user.id]
        if user.in_app:
            deliveries.append(
                ("in_app", notification_id, None, reason, {}, f"n{notification_id}.in_app")
            )
        if "email" in outward and user.email_ok:
            deliveries.append(
                ("email", notification_id, None, reason, {}, f"n{notification_id}.email")
            )
    if "webhook" in outward:
        deliveries += yield from _webhook_deliveries(told, context, message_id, key)
    if deliveries:
        yield from _write_deliveries(deliveries, urgent, now)


def _webhook_deliveries(
    told: Sequence[tuple[Recipient, str]], context: Context, message_id: int, key: str
) -> Op[list[tuple[Any, ...]]]:
    hooks = yield fetch(_WEBHOOKS, context.group_id)
    if not hooks:
        return []
    by_org: dict[UUID, list[tuple[Recipient, str]]] = {}
    for user, reason in told:
        if user.webhook:
            by_org.setdefault(user.organization_id, []).append((user, reason))
    deliveries = []
    for hook in hooks:
        users = by_org.get(hook["organization_id"])
        if not users:
            continue
        for reason in sorted({reason for _, reason in users}):
            if reason not in hook["events"]:
                continue
            payload = {
                "message_id": message_id,
                "organization_id": str(hook["organization_id"]),
                "user_ids": [str(u.id) for u, r in users if r == reason],
            }
            deliveries.append(
                ("webhook", None, hook["id"], reason, payload, f"{key}.{reason}.w{hook['id']}")
            )
    return deliveries


def _write_deliveries(
    deliveries: Sequence[tuple[Any, ...]], urgent: bool, now: datetime
) -> Op[None]:
    width = 10
    rows = []
    args: list[Any] = []
    for index, (channel, notification_id, webhook_id, event, payload, key) in enumerate(deliveries):
        rows.append(f"({placeholders(width, 1 + index * width)})")
        args += [
            channel,
            notification_id,
            webhook_id,
            event,
            payload,
            key,
            urgent,
            "pending",
            now,
            now,
        ]
    yield execute(
        "INSERT INTO notification_deliveries (channel, notification_id, webhook_id, event, "  # noqa: S608 (placeholders only)
        "payload, idempotency_key, urgent, status, next_attempt_at, created_at) "
        f"VALUES {', '.join(rows)}",
        *args,
    )


_DIRECTORY_USERS = """
SELECT u.id, u.display_name AS name, u.organization_id AS org_id
FROM messaging_threads AS t
JOIN vendor_connections AS c ON c.group_id = t.group_id AND c.status = 'active'
JOIN user_profiles AS u ON u.organization_id = c.organization_id
WHERE t.id = $1 AND u.erased_at IS NULL
"""

_DIRECTORY_ORGS = """
SELECT o.id, o.name
FROM messaging_threads AS t
JOIN vendor_connections AS c ON c.group_id = t.group_id AND c.status = 'active'
JOIN organizations AS o ON o.id = c.organization_id
WHERE t.id = $1
"""


def mention_directory(thread_id: UUID) -> Op[tuple[list[Named], list[Named]]]:
    """Who a message in this thread can mention: the users the hub knows of the group's active
    member organizations, and those organizations."""
    users = yield fetch(_DIRECTORY_USERS, thread_id)
    orgs = yield fetch(_DIRECTORY_ORGS, thread_id)
    return (
        [Named(r["id"], r["name"], r["org_id"]) for r in users],
        [Named(r["id"], r["name"]) for r in orgs],
    )


# --- the inbox (GET /me/notifications) --------------------------------------------------------

# Only notifications of groups the caller's organization is still an active member of: one that
# was removed from a group no longer reads what its threads said.
_INBOX = """
SELECT n.id, n.reason, n.urgent, n.created_at, n.read_at, n.group_id, g.name AS group_name,
       n.thread_id, t.title AS thread_title, n.seq, n.message_id
FROM user_notifications AS n
JOIN vendor_connections AS c
  ON c.group_id = n.group_id AND c.organization_id = $2 AND c.status = 'active'
JOIN messaging_threads AS t ON t.id = n.thread_id
JOIN vendor_connection_groups AS g ON g.id = n.group_id
WHERE n.user_id = $1 {filters}
ORDER BY n.id DESC LIMIT $3
"""


def inbox(
    user_id: UUID,
    organization_id: UUID,
    *,
    before_id: int | None,
    unread_only: bool,
    limit: int,
) -> Op[list[dict[str, Any]]]:
    """The user's notifications, newest first (`before_id` pages back)."""
    filters, args = "", [user_id, organization_id, limit]
    if before_id is not None:
        args.append(before_id)
        filters += f" AND n.id < ${len(args)}"
    if unread_only:
        filters += " AND n.read_at IS NULL"
    return (yield fetch(_INBOX.format(filters=filters), *args))


def unread_notifications(user_id: UUID, organization_id: UUID) -> Op[int]:
    value = yield fetchval(
        "SELECT count(*) FROM user_notifications AS n JOIN vendor_connections AS c "
        "ON c.group_id = n.group_id AND c.organization_id = $2 AND c.status = 'active' "
        "WHERE n.user_id = $1 AND n.read_at IS NULL",
        user_id,
        organization_id,
    )
    return int(value)


def mark_notifications_read(
    user_id: UUID, ids: Sequence[int] | None, now: datetime
) -> Op[list[int]]:
    """Mark the user's notifications read (these, or all with None); returns the ids that
    changed. Ids of other users' notifications change nothing."""
    if ids is None:
        rows = yield fetch(
            "UPDATE user_notifications SET read_at = $2 "
            "WHERE user_id = $1 AND read_at IS NULL RETURNING id",
            user_id,
            now,
        )
    elif not ids:
        return []
    else:
        rows = yield fetch(
            "UPDATE user_notifications SET read_at = $2 WHERE user_id = $1 AND read_at IS NULL "  # noqa: S608 (placeholders only)
            f"AND id IN ({placeholders(len(ids), 3)}) RETURNING id",
            user_id,
            now,
            *ids,
        )
    return [row["id"] for row in rows]


def mark_thread_notifications_read(
    user_id: UUID, thread_id: UUID, up_to_seq: int | None, now: datetime
) -> Op[list[int]]:
    """Mark the user's notifications about a thread read (those about messages up to
    `up_to_seq`, or all): reading a thread answers what it notified, as Mattermost clears a
    channel's mentions when it is viewed. Only the inbox's state: an acknowledgement asked
    for is still pending until someone confirms. Returns the ids that changed."""
    sql = (
        "UPDATE user_notifications SET read_at = $3 "
        "WHERE user_id = $1 AND read_at IS NULL AND thread_id = $2"
    )
    if up_to_seq is None:
        rows = yield fetch(sql + " RETURNING id", user_id, thread_id, now)
    else:
        rows = yield fetch(sql + " AND seq <= $4 RETURNING id", user_id, thread_id, now, up_to_seq)
    return [row["id"] for row in rows]


def read_in_thread(
    user_id: UUID, organization_id: UUID, thread_id: UUID, up_to_seq: int, now: datetime
) -> Op[tuple[list[int], int]]:
    """What a read mark does to the inbox, in the receipt's own transaction: the notifications
    about messages up to `up_to_seq` are read, and the unread count after (0 when none
    changed, not asked)."""
    ids = yield from mark_thread_notifications_read(user_id, thread_id, up_to_seq, now)
    if not ids:
        return ids, 0
    unread = yield from unread_notifications(user_id, organization_id)
    return ids, unread


# --- reminders of what is not acknowledged (hub.actors.escalation) ----------------------------

# With what decides whether a reminder still makes sense: a thread or group archived since (it
# can no longer be confirmed there), or an organization no longer an active member.
_DUE_REQUESTS = """
SELECT r.message_id, r.organization_id, r.thread_id, r.targets, r.reminders_sent, r.next_at,
       m.seq, m.kind, t.status AS thread_status, g.status AS group_status,
       c.status AS member_status
FROM ack_requests AS r
JOIN thread_messages AS m ON m.id = r.message_id
JOIN messaging_threads AS t ON t.id = r.thread_id
JOIN vendor_connection_groups AS g ON g.id = r.group_id
LEFT JOIN vendor_connections AS c
  ON c.group_id = r.group_id AND c.organization_id = r.organization_id
WHERE r.state = 'pending' AND r.next_at <= $1
ORDER BY r.next_at, r.message_id, r.organization_id
LIMIT $2
"""

_MANAGERS = ("owner", "admin")


def remind_due(now: datetime, outward: Iterable[str], limit: int = 100) -> Op[int]:
    """Remind every organization whose acknowledgement is due (at most `limit`), in one
    transaction: the notification of each reminder and its deliveries, the count, and when the
    next is due by the group's policy; none after the wedding day (the request expires). After
    the policy's `escalate_after` reminders, the organization's owners and admins are told too,
    as an escalation. Returns how many were reminded.

    A row another node reminded first is skipped: the UPDATE's own condition (still due) is
    checked again against the row it finds, after any other writer's commit."""
    due = yield fetch(_DUE_REQUESTS, now, limit)
    outward = tuple(outward)
    reminded = 0
    contexts: dict[UUID, Context] = {}
    for row in due:
        thread_id = row["thread_id"]
        if thread_id not in contexts:
            contexts[thread_id] = yield from read_context(thread_id)
        context = contexts[thread_id]
        if (
            row["thread_status"] == "archived"
            or row["group_status"] == "archived"
            or row["member_status"] != "active"
        ):
            # Nobody can confirm it any more (or the organization left): it expires, untold.
            yield execute(
                "UPDATE ack_requests SET state = 'expired', next_at = NULL "
                "WHERE message_id = $1 AND organization_id = $2 AND state = 'pending'",
                row["message_id"],
                row["organization_id"],
            )
            continue
        sent = row["reminders_sent"] + 1
        following = next_reminder(context.policy, context.wedding_date, now, sent)
        claimed = yield fetchrow(
            "UPDATE ack_requests SET reminders_sent = $3, next_at = $4, state = $5 "
            "WHERE message_id = $1 AND organization_id = $2 AND state = 'pending' "
            "AND next_at <= $6 RETURNING message_id",
            row["message_id"],
            row["organization_id"],
            sent,
            following,
            "pending" if following is not None else "expired",
            now,
        )
        if claimed is None:
            continue
        reminded += 1
        audience = yield from read_audience(context.group_id, thread_id)
        members = [u for u in audience if u.organization_id == row["organization_id"]]
        targets = {UUID(t) for t in row["targets"]}
        first = [u for u in members if u.id in targets] or members
        escalated = sent > context.policy.escalate_after
        told = {u.id: (u, "escalation" if escalated else "reminder") for u in first}
        if escalated:
            for user in members:
                if user.role in _MANAGERS:
                    told[user.id] = (user, "escalation")
        urgent = is_urgent(
            priority=context.priority,
            thread_type=context.thread_type,
            kind=row["kind"],
            wedding_date=context.wedding_date,
            now=now,
            policy=context.policy,
        )
        yield from write_notifications(
            [(u, reason) for u, reason in told.values() if u.accepts(reason, urgent)],
            context,
            thread_id=thread_id,
            message_id=row["message_id"],
            seq=row["seq"],
            urgent=urgent,
            now=now,
            key=f"m{row['message_id']}.o{row['organization_id']}.r{sent}",
            outward=outward,
        )
    return reminded


def next_reminder_due() -> Op[datetime | None]:
    return (
        yield fetchval(
            "SELECT next_at FROM ack_requests WHERE state = 'pending' ORDER BY next_at LIMIT 1"
        )
    )
