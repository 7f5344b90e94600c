"""What an export reads (GDPR articles 15 and 20, `hub.privacy.export`): everything the hub holds
about one user, or about one organization and its users, in pages.

Each kind of row is a `Listing`: fixed SQL naming its columns, the rows that are the subject's
(`who`: a user's own, or those of every user of an organization), and the key it is paged on,
so no listing is read whole into memory. The subject's messages are found by sender, not by
the groups the subject can see now: a message stays theirs after their organization leaves its
group. None of these queries has an index of its own (an export is rare and rate-limited), so a
page may scan; keyset paging keeps the whole export one pass per table.

Secrets never leave here: webhooks are read without their sealed secret, and nothing reads the
data keys or a delivery's payload.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal
from uuid import UUID

from hub.storage.messages import MESSAGE_COLUMNS, MESSAGES_WITH_SENDERS
from hub.storage.sql import Op, fetch, fetchval

SubjectKind = Literal["user", "organization"]


@dataclass(frozen=True, slots=True)
class Subject:
    """Whose data an export holds: one user, or one organization with all of its users."""

    kind: SubjectKind
    id: UUID


@dataclass(frozen=True, slots=True)
class Listing:
    """One kind of row of a subject. `select` and `source` are constant SQL; `who` maps each
    subject kind to the condition choosing the subject's rows, with `$1` the subject's id and
    `$2` (when a condition uses it) the id as text; `keys` are the unique columns rows are
    ordered and paged by, `key_names` their names in a row."""

    name: str
    select: str
    source: str
    who: dict[SubjectKind, str]
    keys: tuple[str, ...]
    key_names: tuple[str, ...]


# The users whose per-user rows an organization's export holds: its users now.
_ORG_USERS = "IN (SELECT id FROM user_profiles WHERE organization_id = $1)"


def _per_user(column: str) -> dict[SubjectKind, str]:
    return {"user": f"{column} = $1", "organization": f"{column} {_ORG_USERS}"}


MESSAGES = Listing(
    "messages",
    MESSAGE_COLUMNS + ", t.title AS thread_title, t.group_id AS group_id, "
    "g.name AS group_name, g.wedding_date AS wedding_date",
    MESSAGES_WITH_SENDERS + " JOIN messaging_threads AS t ON t.id = m.thread_id "
    "JOIN vendor_connection_groups AS g ON g.id = t.group_id",
    {"user": "m.sender_user_id = $1", "organization": "m.sender_org_id = $1"},
    ("m.id",),
    ("id",),
)
USERS = Listing(
    "users",
    "id, organization_id, username, display_name, role, email, created_at, updated_at, "
    "last_seen_at",
    "user_profiles",
    {"user": "id = $1", "organization": "organization_id = $1"},
    ("id",),
    ("id",),
)
RECEIPTS = Listing(
    "receipts",
    "user_id, thread_id, last_read_seq, read_at",
    "message_read_receipts",
    _per_user("user_id"),
    ("user_id", "thread_id"),
    ("user_id", "thread_id"),
)
PRESENCE = Listing(
    "presence",
    "user_id, thread_id, status, last_seen_at",
    "thread_presence",
    _per_user("user_id"),
    ("user_id", "thread_id"),
    ("user_id", "thread_id"),
)
PREFERENCES = Listing(
    "preferences",
    "user_id, in_app_enabled, email_enabled, webhook_enabled, urgent_only, quiet_hours_start, "
    "quiet_hours_end, time_zone, mention_alerts, consent_at, updated_at",
    "vendor_notification_preferences",
    _per_user("user_id"),
    ("user_id",),
    ("user_id",),
)
MUTES = Listing(
    "mutes",
    "user_id, thread_id, muted_at",
    "thread_mutes",
    _per_user("user_id"),
    ("user_id", "thread_id"),
    ("user_id", "thread_id"),
)
NOTIFICATIONS = Listing(
    "notifications",
    "id, user_id, group_id, thread_id, message_id, seq, reason, urgent, created_at, read_at",
    "user_notifications",
    _per_user("user_id"),
    ("id",),
    ("id",),
)
ACKNOWLEDGEMENTS = Listing(
    "acknowledgements",
    "a.user_id, a.organization_id, a.message_id, m.thread_id, m.seq, a.acknowledged_at",
    "message_acknowledgements AS a JOIN thread_messages AS m ON m.id = a.message_id",
    _per_user("a.user_id"),
    ("a.message_id", "a.organization_id"),
    ("message_id", "organization_id"),
)
# A user's audit rows are those they acted in and those about them (their preferences, say);
# an organization's, those its users acted in and those about it or any of its users.
AUDIT = Listing(
    "audit",
    "id, at, actor_user_id, actor_org_id, action, target_type, target_id, group_id, ip, "
    "user_agent, details",
    "vendor_communication_audit",
    {
        "user": "(actor_user_id = $1 OR (target_type = 'user' AND target_id = $2))",
        "organization": "(actor_org_id = $1 OR (target_type = 'organization' AND target_id = $2)"
        " OR (target_type = 'user' AND target_id IN (SELECT CAST(id AS text) FROM user_profiles"
        " WHERE organization_id = $1)))",
    },
    ("id",),
    ("id",),
)
ATTACHMENTS = Listing(
    "attachments",
    "a.id, a.thread_id, a.uploader_user_id, a.uploader_org_id, a.filename_sealed, "
    "a.content_type, a.size_bytes, a.sha256, a.storage_key, a.key_version, a.created_at, "
    "a.message_id, a.width, a.height, a.thumbnail_key, a.thumbnail_size, "
    "m.client_msg_id AS message_client_msg_id, m.seq AS message_seq",
    "message_attachments AS a LEFT JOIN thread_messages AS m ON m.id = a.message_id",
    {"user": "a.uploader_user_id = $1", "organization": "a.uploader_org_id = $1"},
    ("a.id",),
    ("id",),
)
# An organization's own: its webhooks (never their secrets) and the groups it owns.
WEBHOOKS = Listing(
    "webhooks",
    "id, url, events, created_by, created_at, deleted_at",
    "organization_webhooks",
    {"organization": "organization_id = $1"},
    ("id",),
    ("id",),
)
GROUPS = Listing(
    "groups",
    "id, name, description, wedding_date, status, settings, client_id, created_by, created_at, "
    "updated_at, archived_at",
    "vendor_connection_groups",
    {"organization": "owner_organization_id = $1"},
    ("id",),
    ("id",),
)
GROUP_MEMBERS = Listing(
    "group_members",
    "c.group_id, c.organization_id, o.name AS organization_name, c.vendor_type, c.role, "
    "c.status, c.invited_by, c.invited_at, c.joined_at",
    "vendor_connections AS c JOIN organizations AS o ON o.id = c.organization_id "
    "JOIN vendor_connection_groups AS g ON g.id = c.group_id",
    {"organization": "g.owner_organization_id = $1"},
    ("c.group_id", "c.organization_id"),
    ("group_id", "organization_id"),
)

CLIENTS = Listing(
    "clients",
    "id, partner_one_name, partner_two_name, email, phone, wedding_date, venue_name, "
    "venue_address, created_at, updated_at",
    "clients",
    {"organization": "organization_id = $1"},
    ("id",),
    ("id",),
)

# Every listing an export of each kind reads, in the order of the archive.
LISTINGS: dict[SubjectKind, tuple[Listing, ...]] = {
    "user": (
        MESSAGES,
        RECEIPTS,
        PRESENCE,
        PREFERENCES,
        MUTES,
        NOTIFICATIONS,
        ACKNOWLEDGEMENTS,
        AUDIT,
        ATTACHMENTS,
    ),
    "organization": (
        USERS,
        MESSAGES,
        RECEIPTS,
        PRESENCE,
        PREFERENCES,
        MUTES,
        NOTIFICATIONS,
        ACKNOWLEDGEMENTS,
        AUDIT,
        ATTACHMENTS,
        WEBHOOKS,
        GROUPS,
        GROUP_MEMBERS,
        CLIENTS,
    ),
}


def _condition(listing: Listing, subject: Subject) -> tuple[str, tuple[Any, ...]]:
    who = listing.who.get(subject.kind)
    if who is None:
        raise ValueError(f"{listing.name} is not part of a {subject.kind}'s export")
    return who, (subject.id, str(subject.id)) if "$2" in who else (subject.id,)


def page(
    listing: Listing, subject: Subject, after: tuple[Any, ...] | None, limit: int
) -> Op[list[dict[str, Any]]]:
    """The subject's next `limit` rows of `listing` after the key `after` (from the first when
    None), in key order."""
    who, args = _condition(listing, subject)
    clauses = [who]
    if after is not None:
        first = len(args) + 1
        marks = ", ".join(f"${first + i}" for i in range(len(after)))
        clauses.append(f"({', '.join(listing.keys)}) > ({marks})")
        args = (*args, *after)
    rows = yield fetch(
        f"SELECT {listing.select} FROM {listing.source} "  # noqa: S608 (constant SQL)
        f"WHERE {' AND '.join(clauses)} ORDER BY {', '.join(listing.keys)} "
        f"LIMIT ${len(args) + 1}",
        *args,
        limit,
    )
    return rows


def count(listing: Listing, subject: Subject) -> Op[int]:
    """How many rows of `listing` the subject has now (the export's audit row says so)."""
    who, args = _condition(listing, subject)
    value = yield fetchval(
        f"SELECT count(*) FROM {listing.source} WHERE {who}",  # noqa: S608 (constant SQL)
        *args,
    )
    return int(value or 0)


def counts(subject: Subject) -> Op[dict[str, int]]:
    """Rows of every listing of the subject's export, by listing name, in one read."""
    found: dict[str, int] = {}
    for listing in LISTINGS[subject.kind]:
        found[listing.name] = yield from count(listing, subject)
    return found


_THREADS = """
SELECT t.id, t.title, t.thread_type, t.priority, t.status, t.created_at, t.archived_at,
       t.group_id, g.name AS group_name, g.wedding_date, g.owner_organization_id
FROM messaging_threads AS t JOIN vendor_connection_groups AS g ON g.id = t.group_id
WHERE t.id IN ({ids})
ORDER BY t.id
"""


def thread_contexts(thread_ids: list[UUID]) -> Op[list[dict[str, Any]]]:
    """The threads named, each with its group's name and wedding date: the context of the
    subject's rows, without anyone else's messages."""
    if not thread_ids:
        return []
    ids = ", ".join(f"${i}" for i in range(1, len(thread_ids) + 1))
    rows = yield fetch(_THREADS.format(ids=ids), *thread_ids)
    return rows


def subject_exists(subject: Subject) -> Op[bool]:
    table = "user_profiles" if subject.kind == "user" else "organizations"
    found = yield fetchval(f"SELECT 1 FROM {table} WHERE id = $1", subject.id)  # noqa: S608 (one of two names)
    return found is not None
