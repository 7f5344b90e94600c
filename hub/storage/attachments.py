"""Attachment rows: recording an upload (inside the organization's quota), finding one, linking
uploads to the message that carries them, and what the sweep removes.

A row is written only once its blob is complete in the blob store, and removed before its blob
is: a crash between the two leaves a blob no row names (collected later), never a row naming a
missing blob.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

import msgspec

from hub.errors import Conflict, Forbidden, Invalid, NotFound, QuotaExceeded
from hub.storage.records import row_to
from hub.storage.sql import Op, execute, fetch, fetchrow, fetchval

# At most this many files travel in one message (Mattermost's default is 10 too).
ATTACHMENTS_PER_MESSAGE_MAX = 10


class AttachmentRecord(msgspec.Struct, frozen=True):
    id: UUID
    thread_id: UUID
    uploader_user_id: UUID
    uploader_org_id: UUID
    filename_sealed: str  # hub.attachments.names
    content_type: str
    size_bytes: int
    sha256: str
    storage_key: str
    key_version: int
    created_at: datetime
    message_id: int | None = None
    width: int | None = None
    height: int | None = None
    thumbnail_key: str | None = None
    thumbnail_size: int | None = None
    # The client_msg_id of the message it is attached to (a retried send carries the same).
    message_client_msg_id: str | None = None
    # The uploader's display name as it is now (who sent it, once it is attached).
    uploader_name: str | None = None

    def summary(self, filename: str) -> dict[str, object]:
        """What a message carries about it (`metadata.attachments`, sealed with the message):
        enough to show and fetch it, nothing of where or how it is stored."""
        entry: dict[str, object] = {
            "id": str(self.id),
            "filename": filename,
            "content_type": self.content_type,
            "size": self.size_bytes,
            "sha256": self.sha256,
        }
        if self.width is not None and self.height is not None:
            entry["width"], entry["height"] = self.width, self.height
        entry["thumbnail"] = self.thumbnail_key is not None
        return entry


_COLUMNS = """a.id, a.thread_id, a.uploader_user_id, a.uploader_org_id, a.filename_sealed,
    a.content_type, a.size_bytes, a.sha256, a.storage_key, a.key_version, a.created_at,
    a.message_id, a.width, a.height, a.thumbnail_key, a.thumbnail_size,
    m.client_msg_id AS message_client_msg_id, u.display_name AS uploader_name"""
_FROM = (
    "message_attachments AS a LEFT JOIN thread_messages AS m ON m.id = a.message_id "
    "JOIN user_profiles AS u ON u.id = a.uploader_user_id"
)


def organization_usage(org_id: UUID) -> Op[int]:
    """Bytes of attachments an organization's users have uploaded and not yet lost."""
    used = yield fetchval(
        "SELECT coalesce(sum(size_bytes), 0) FROM message_attachments WHERE uploader_org_id = $1",
        org_id,
    )
    return int(used)


def quota_error(used: int, adding: int, quota: int) -> QuotaExceeded:
    return QuotaExceeded(
        f"your organization's attachments would take {used + adding} bytes, over its quota of"
        f" {quota} bytes ({used} used)",
        details=[{"used_bytes": used, "upload_bytes": adding, "quota_bytes": quota}],
    )


def record_upload(record: AttachmentRecord, quota: int) -> Op[AttachmentRecord]:
    """Insert the row of an upload whose blob is complete, unless it takes its organization
    over `quota`: checked in the same transaction, so concurrent uploads cannot all slip under
    it: the organization's row is locked first (a no-op update, the one row lock both engines
    spell alike; SQLite has one writer anyway)."""
    yield execute(
        "UPDATE organizations SET updated_at = updated_at WHERE id = $1", record.uploader_org_id
    )
    used = yield from organization_usage(record.uploader_org_id)
    if used + record.size_bytes > quota:
        raise quota_error(used, record.size_bytes, quota)
    yield execute(
        """
        INSERT INTO message_attachments
            (id, thread_id, uploader_user_id, uploader_org_id, filename_sealed, content_type,
             size_bytes, sha256, storage_key, key_version, width, height, thumbnail_key,
             thumbnail_size, created_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
        """,
        record.id,
        record.thread_id,
        record.uploader_user_id,
        record.uploader_org_id,
        record.filename_sealed,
        record.content_type,
        record.size_bytes,
        record.sha256,
        record.storage_key,
        record.key_version,
        record.width,
        record.height,
        record.thumbnail_key,
        record.thumbnail_size,
        record.created_at,
    )
    return record


def get_attachment(attachment_id: UUID) -> Op[AttachmentRecord | None]:
    row = yield fetchrow(f"SELECT {_COLUMNS} FROM {_FROM} WHERE a.id = $1", attachment_id)  # noqa: S608 (constant columns)
    return None if row is None else row_to(row, AttachmentRecord)


def attachments_by_id(ids: Sequence[UUID]) -> Op[dict[UUID, AttachmentRecord]]:
    found: dict[UUID, AttachmentRecord] = {}
    for attachment_id in ids:
        record = yield from get_attachment(attachment_id)
        if record is not None:
            found[attachment_id] = record
    return found


def link_attachments(
    message_id: int, thread_id: UUID, sender_user_id: UUID, ids: Sequence[UUID]
) -> Op[None]:
    """Attach uploads to a message being stored, in its transaction. Each must be the sender's,
    of this thread, and still unattached; the checks sit in the UPDATE, so two messages racing
    for one upload cannot both have it (the loser's message is rolled back with a clear error)."""
    for attachment_id in ids:
        linked = yield fetchval(
            """
            UPDATE message_attachments SET message_id = $1
            WHERE id = $2 AND thread_id = $3 AND uploader_user_id = $4 AND message_id IS NULL
            RETURNING id
            """,
            message_id,
            attachment_id,
            thread_id,
            sender_user_id,
        )
        if linked is None:
            raise Invalid(
                f"attachment {attachment_id} is not an unattached upload of yours in this thread"
            )


def thread_attachments(
    thread_id: UUID, *, before: tuple[datetime, UUID] | None, limit: int
) -> Op[list[AttachmentRecord]]:
    """A thread's files that were sent in messages, newest first; `before` is the (created_at,
    id) of the last one of the previous page."""
    where = "a.thread_id = $1 AND a.message_id IS NOT NULL"
    args: tuple = (thread_id,)
    if before is not None:
        where += " AND (a.created_at < $2 OR (a.created_at = $2 AND a.id < $3))"
        args = (thread_id, *before)
    rows = yield fetch(
        f"SELECT {_COLUMNS} FROM {_FROM} WHERE {where}"  # noqa: S608 (constant columns)
        f" ORDER BY a.created_at DESC, a.id DESC LIMIT ${len(args) + 1}",
        *args,
        limit,
    )
    return [row_to(r, AttachmentRecord) for r in rows]


def orphans(before: datetime, limit: int) -> Op[list[AttachmentRecord]]:
    """Uploads never attached to a message and made before `before`, oldest first."""
    rows = yield fetch(
        f"SELECT {_COLUMNS} FROM {_FROM} WHERE a.message_id IS NULL AND a.created_at < $1"  # noqa: S608 (constant columns)
        " ORDER BY a.created_at LIMIT $2",
        before,
        limit,
    )
    return [row_to(r, AttachmentRecord) for r in rows]


def delete_unattached(attachment_id: UUID) -> Op[AttachmentRecord | None]:
    """Remove an upload's row if it is still unattached (a message may have taken it since the
    sweep looked); the record when removed, so its blobs can go next."""
    record = yield from get_attachment(attachment_id)
    if record is None or record.message_id is not None:
        return None
    yield execute(
        "DELETE FROM message_attachments WHERE id = $1 AND message_id IS NULL", attachment_id
    )
    return record


def delete_own_upload(attachment_id: UUID, user_id: UUID) -> Op[AttachmentRecord]:
    """Remove an upload its uploader no longer wants, while no message carries it: Forbidden
    for anyone else, Conflict once attached (the message owns it then)."""
    record = yield from get_attachment(attachment_id)
    if record is None:
        raise NotFound(f"attachment {attachment_id} not found")
    if record.uploader_user_id != user_id:
        raise Forbidden("only its uploader may remove an upload")
    if record.message_id is not None:
        raise Conflict(
            f"attachment {attachment_id} is attached to message {record.message_id}; it stays"
            " with the message"
        )
    yield execute(
        "DELETE FROM message_attachments WHERE id = $1 AND message_id IS NULL", attachment_id
    )
    return record


def blob_keys_in_use(keys: Sequence[str]) -> Op[set[str]]:
    """Which of these blob keys a row names (as contents or as thumbnail)."""
    used: set[str] = set()
    for key in keys:
        hit = yield fetchval(
            "SELECT 1 FROM message_attachments WHERE storage_key = $1 OR thumbnail_key = $1", key
        )
        if hit is not None:
            used.add(key)
    return used
