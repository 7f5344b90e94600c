"""Erasing a user (GDPR article 17): what the hub holds about them goes, in bounded
transactions, while the rows others' data refers to stay, pseudonymised (docs/privacy.md,
"Erasing a user").

A user may have sent thousands of messages, so their messages are made tombstones
`MESSAGES_BATCH` a transaction, each exactly as a deletion makes it (`changes.tombstone`: the
thread's next change number, the ciphertext overwritten, its attachments' rows gone); the
caller tells each thread's subscribers after each commit. When none is left, one last
transaction removes the rest (unsent uploads, read receipts, presence, preferences, mutes,
notifications and their deliveries), clears the IP address and user agent of the audit rows
they are the actor of, and pseudonymises the profile. The profile row itself stays: messages,
groups, threads, confirmations and webhooks name it by id, and it now says "Erased user".
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from hub.errors import NotFound
from hub.storage import changes
from hub.storage.records import UserProfile, row_to
from hub.storage.sql import Op, execute, fetch, fetchrow

MESSAGES_BATCH = 200
AUDIT_BATCH = 5000
ERASED_NAME = "Erased user"

_THEIR_MESSAGES = """
SELECT m.id, m.thread_id, m.seq, m.sender_user_id, m.kind, m.change_no, m.deleted_at,
       m.deleted_by, t.group_id
FROM thread_messages AS m JOIN messaging_threads AS t ON t.id = m.thread_id
WHERE m.sender_user_id = $1 AND m.deleted_at IS NULL
ORDER BY m.id LIMIT $2
"""


def erasable_user(user_id: UUID) -> Op[UserProfile]:
    """The user to erase, as stored now; NotFound when the hub never saw them."""
    row = yield fetchrow("SELECT * FROM user_profiles WHERE id = $1", user_id)
    if row is None:
        raise NotFound(f"user {user_id} not found")
    return row_to(row, UserProfile)


def mark_erased(user_id: UUID, erased_by: UUID | None, now: datetime) -> Op[None]:
    """The first step: from this commit on no token of theirs is accepted (`hub.identities`)
    and nobody's notifications name them as an audience. Marking again keeps the first mark."""
    yield execute(
        "UPDATE user_profiles SET erased_at = $2, erased_by = $3, updated_at = $2 "
        "WHERE id = $1 AND erased_at IS NULL",
        user_id,
        now,
        erased_by,
    )


@dataclass(frozen=True, slots=True)
class MessagesErased:
    """One transaction's tombstones (for the `message_deleted` frames once committed) and the
    blob keys of the attachments whose rows went with them."""

    changes: tuple[changes.Change, ...] = ()
    blob_keys: tuple[str, ...] = ()


def erase_messages(user_id: UUID, now: datetime, limit: int = MESSAGES_BATCH) -> Op[MessagesErased]:
    """Make up to `limit` of the user's messages not yet deleted tombstones; call again until
    none comes back. `deleted_by` is the user themselves: the deletion is theirs, asked for by
    erasing them, whoever asked (the audit row says who)."""
    rows = yield fetch(_THEIR_MESSAGES, user_id, limit)
    made: list[changes.Change] = []
    for row in rows:
        found = changes.Target(
            message_id=row["id"],
            sender_user_id=row["sender_user_id"],
            kind=row["kind"],
            change_no=row["change_no"],
            deleted_at=row["deleted_at"],
            deleted_by=row["deleted_by"],
        )
        made.append(
            (
                yield from changes.tombstone(
                    row["thread_id"], row["group_id"], found, row["seq"], user_id, now
                )
            )
        )
    keys = tuple(key for change in made for key in change.attachment_keys)
    return MessagesErased(tuple(made), keys)


def clear_audit_addresses(user_id: UUID, limit: int = AUDIT_BATCH) -> Op[int]:
    """Clear the IP address and user agent of up to `limit` audit rows the user is the actor
    of (personal data; the actor id, now a pseudonym, and what was done stay). How many."""
    rows = yield fetch(
        "UPDATE vendor_communication_audit SET ip = NULL, user_agent = NULL WHERE id IN "
        "(SELECT id FROM vendor_communication_audit WHERE actor_user_id = $1 "
        "AND (ip IS NOT NULL OR user_agent IS NOT NULL) ORDER BY id LIMIT $2) RETURNING id",
        user_id,
        limit,
    )
    return len(rows)


@dataclass(frozen=True, slots=True)
class Erased:
    """What the last transaction removed, and the pseudonym the profile now has."""

    username: str
    counts: dict[str, int] = field(default_factory=dict)
    blob_keys: tuple[str, ...] = ()
    changes: tuple[changes.Change, ...] = ()


# What is the user's alone, removed whole (children before parents: the foreign keys are
# checked at every statement). Each statement returns one row per row deleted, for the counts.
_REMOVALS = (
    (
        "notification_deliveries",
        "DELETE FROM notification_deliveries WHERE notification_id IN "
        "(SELECT id FROM user_notifications WHERE user_id = $1) RETURNING id",
    ),
    ("notifications", "DELETE FROM user_notifications WHERE user_id = $1 RETURNING id"),
    (
        "read_receipts",
        "DELETE FROM message_read_receipts WHERE user_id = $1 RETURNING thread_id",
    ),
    ("presence", "DELETE FROM thread_presence WHERE user_id = $1 RETURNING thread_id"),
    ("mutes", "DELETE FROM thread_mutes WHERE user_id = $1 RETURNING thread_id"),
    (
        "preferences",
        "DELETE FROM vendor_notification_preferences WHERE user_id = $1 RETURNING user_id",
    ),
)


def erase_profile(user_id: UUID, erased_by: UUID | None, now: datetime) -> Op[Erased]:
    """Remove what is the user's alone and pseudonymise their profile (after their messages:
    `erase_messages` until none is left). Their uploads never sent go too, blobs named for
    the caller to delete after the commit. Kept, pointing at the pseudonymised profile: the
    organization's confirmations they gave, the webhooks they created, the groups and threads
    they started, their place in others' requests to confirm (reminders skip erased users)."""
    # A message that was committed while the batches ran (a request already past the token
    # check when the mark was committed) is made a tombstone here, with the rest.
    late = yield from erase_messages(user_id, now)
    counts: dict[str, int] = {}
    uploads = yield fetch(
        "DELETE FROM message_attachments WHERE uploader_user_id = $1 "
        "RETURNING storage_key, thumbnail_key",
        user_id,
    )
    counts["uploads"] = len(uploads)
    for name, sql in _REMOVALS:
        counts[name] = len((yield fetch(sql, user_id)))
    username = f"erased-{secrets.token_hex(4)}"
    yield execute(
        "UPDATE user_profiles SET display_name = $2, username = $3, email = NULL, "
        "last_seen_at = NULL, erased_at = coalesce(erased_at, $4), "
        "erased_by = coalesce(erased_by, $5), updated_at = $4 WHERE id = $1",
        user_id,
        ERASED_NAME,
        username,
        now,
        erased_by,
    )
    keys = tuple(
        key for row in uploads for key in (row["storage_key"], row["thumbnail_key"]) if key
    )
    return Erased(username, counts, late.blob_keys + keys, late.changes)
