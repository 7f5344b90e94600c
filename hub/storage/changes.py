"""A message's edits and its deletion, numbered per thread.

Every change takes the thread's next change number (`messaging_threads.last_change`, kept on
the message as `change_no`), so a client that was away asks for the changes after the last one
it saw, and two changes of one message are applied in the order they were made, whichever node
delivers them first.

A deleted message keeps its row and its seq (a tombstone: history has no hole and the seq check
no gap), but its body, metadata and attachments are gone: the ciphertext is overwritten in the
same statement that marks it deleted (with SQLite's `secure_delete`, the old bytes are zeroed
in the page), its attachments' rows are removed with it (their blobs next, by the caller), and
what referred to its text (pending requests to confirm it, deliveries not yet sent) ends.
Who may change a message is decided by the caller (`hub.messaging`, through `hub.access`) in
the same transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

import msgspec

from hub.errors import Conflict, Invalid, NotFound
from hub.storage.sql import Op, execute, fetch, fetchrow, fetchval

# Kinds whose text a sender may change: a location's label is tied to its coordinates and a
# system message is the hub's.
EDITABLE_KINDS = ("text", "change", "attachment")


class Change(msgspec.Struct, frozen=True):
    """One committed change of a message (`new` is false when it had been deleted already:
    that earlier deletion). `attachment_keys` are the blob keys of the attachments the
    deletion removed, for the caller to delete after the commit."""

    kind: Literal["edited", "deleted"]
    thread_id: UUID
    group_id: UUID
    seq: int
    message_id: int
    change_no: int
    at: datetime
    by: UUID
    sender_user_id: UUID
    new: bool = True
    attachment_keys: tuple[str, ...] = ()


class Target(msgspec.Struct, frozen=True):
    """What deciding a change needs of the message, read before it is sealed again."""

    message_id: int
    sender_user_id: UUID
    kind: str
    change_no: int
    deleted_at: datetime | None
    deleted_by: UUID | None


def target(thread_id: UUID, seq: int) -> Op[Target]:
    """The message as it is now; NotFound when the thread has no message `seq`."""
    row = yield fetchrow(
        "SELECT id, sender_user_id, kind, change_no, deleted_at, deleted_by FROM thread_messages "
        "WHERE thread_id = $1 AND seq = $2",
        thread_id,
        seq,
    )
    if row is None:
        raise NotFound(f"message {seq} not found in thread {thread_id}")
    return Target(
        message_id=row["id"],
        sender_user_id=row["sender_user_id"],
        kind=row["kind"],
        change_no=row["change_no"],
        deleted_at=row["deleted_at"],
        deleted_by=row["deleted_by"],
    )


def check_editable(target: Target, seq: int) -> None:
    """Whether the message can take new text (who may edit it is `hub.access`'s decision)."""
    if target.deleted_at is not None:
        raise Conflict(f"message {seq} was deleted")
    if target.kind not in EDITABLE_KINDS:
        raise Invalid(f"a {target.kind} message cannot be edited")


def _next_change(thread_id: UUID) -> Op[int]:
    change_no = yield fetchval(
        "UPDATE messaging_threads SET last_change = last_change + 1 WHERE id = $1 "
        "RETURNING last_change",
        thread_id,
    )
    return int(change_no)


def edit(
    thread_id: UUID,
    group_id: UUID,
    seq: int,
    editor_id: UUID,
    expected_change: int,
    sealed: tuple[bytes, bytes, int, dict],
    now: datetime,
) -> Op[Change]:
    """Replace the message's sealed body and metadata (`sealed`: ciphertext, nonce, key
    version, sealed metadata); the caller decided in this transaction that `editor_id` may.
    Conflict when it changed since it was read (`expected_change`), so a concurrent edit or
    deletion is never silently undone."""
    found = yield from target(thread_id, seq)
    check_editable(found, seq)
    if found.change_no != expected_change:
        raise Conflict(f"message {seq} changed meanwhile; edit it again")
    change_no = yield from _next_change(thread_id)
    ciphertext, nonce, key_version, metadata = sealed
    yield execute(
        "UPDATE thread_messages SET body_ciphertext = $2, body_nonce = $3, key_version = $4, "
        "metadata = $5, edited_at = $6, change_no = $7 WHERE id = $1",
        found.message_id,
        ciphertext,
        nonce,
        key_version,
        metadata,
        now,
        change_no,
    )
    return Change(
        kind="edited",
        thread_id=thread_id,
        group_id=group_id,
        seq=seq,
        message_id=found.message_id,
        change_no=change_no,
        at=now,
        by=editor_id,
        sender_user_id=found.sender_user_id,
    )


def tombstone(
    thread_id: UUID, group_id: UUID, found: Target, seq: int, deleter_id: UUID, now: datetime
) -> Op[Change]:
    """Make the message a tombstone (the caller decided in this transaction that `deleter_id`
    may). Deleting it again answers with the first deletion."""
    if found.deleted_at is not None:
        return Change(
            kind="deleted",
            thread_id=thread_id,
            group_id=group_id,
            seq=seq,
            message_id=found.message_id,
            change_no=found.change_no,
            at=found.deleted_at,
            by=found.deleted_by or found.sender_user_id,
            sender_user_id=found.sender_user_id,
            new=False,
        )
    change_no = yield from _next_change(thread_id)
    yield execute(
        "UPDATE thread_messages SET body_ciphertext = $2, body_nonce = $2, metadata = '{}', "
        "deleted_at = $3, deleted_by = $4, change_no = $5 WHERE id = $1",
        found.message_id,
        b"",
        now,
        deleter_id,
        change_no,
    )
    attachments = yield fetch(
        "DELETE FROM message_attachments WHERE message_id = $1 "
        "RETURNING storage_key, thumbnail_key",
        found.message_id,
    )
    keys = tuple(
        key for row in attachments for key in (row["storage_key"], row["thumbnail_key"]) if key
    )
    # Nobody is asked to confirm what no longer says anything (deliveries not yet sent end
    # in the dispatcher, which finds the message deleted).
    yield execute(
        "UPDATE ack_requests SET state = 'expired', next_at = NULL "
        "WHERE message_id = $1 AND state = 'pending'",
        found.message_id,
    )
    return Change(
        kind="deleted",
        thread_id=thread_id,
        group_id=group_id,
        seq=seq,
        message_id=found.message_id,
        change_no=change_no,
        at=now,
        by=deleter_id,
        sender_user_id=found.sender_user_id,
        attachment_keys=keys,
    )
