"""The attachment service: what the routes, the message doors and the sweep ask of attachments.

An upload streams through here: the first bytes are sniffed (`types`), then every byte is
counted against the size limit as it arrives, hashed and sealed in chunks into the blob store;
an image's thumbnail is drawn from the stored blob in a worker thread and sealed as a blob of
its own; only then is the row written, inside the organization's quota. Anything that fails on
the way (a limit, a refused type, the client gone, a cancellation) removes what was written.
"""

from __future__ import annotations

import functools
import io
import logging
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import msgspec
import trio

from hub.attachments import names, thumbnails, types
from hub.attachments.blobstore import BlobStore
from hub.attachments.sealedfiles import SealedFile, read_plain, write_sealed
from hub.auth import Principal
from hub.crypto import KeyRing
from hub.errors import FieldInvalid, Invalid, PayloadTooLarge
from hub.storage import Storage
from hub.storage import attachments as rows
from hub.storage.attachments import AttachmentRecord
from hub.storage.records import AuditEntry

log = logging.getLogger(__name__)

# How long removing a failed upload's blobs may take while the upload is being cancelled.
_CLEANUP_S = 10.0


@dataclass(frozen=True, slots=True)
class Limits:
    max_file_size: int
    quota_bytes: int


class Attachments:
    def __init__(self, storage: Storage, blobs: BlobStore, limits: Limits) -> None:
        self.storage = storage
        self.blobs = blobs
        self.limits = limits

    async def _ring(self, version: int | None = None) -> KeyRing:
        return await _ring(self.storage, version)

    # --- upload ----------------------------------------------------------------------------

    async def upload(
        self,
        principal: Principal,
        thread_id: UUID,
        *,
        filename: str,
        declared_type: str | None,
        declared_length: int | None,
        body: AsyncIterable[bytes],
        audit: AuditEntry,
    ) -> AttachmentRecord:
        """Store one file for `thread_id` (access already decided by the caller) and write its
        row with `audit`; the limits are enforced as the bytes arrive."""
        name = names.clean_name(filename)
        limit = self.limits.max_file_size
        if declared_length is not None and declared_length > limit:
            raise _too_large(limit)
        used = await self.storage.read(rows.organization_usage(principal.org_id))
        if used + (declared_length or 0) > self.limits.quota_bytes:
            raise rows.quota_error(used, declared_length or 0, self.limits.quota_bytes)

        stream = _Counted(body, limit)
        head = await stream.head(types.SNIFF_BYTES)
        sniffed = await trio.to_thread.run_sync(types.sniff, head)
        content_type = types.accepted_type(sniffed, declared_type, name)

        # Sealed under the uploader organization's own key, as its messages are.
        ring = await self.storage.sealing.ring_for(principal.org_id)
        attachment_id = uuid.uuid4()
        written_keys = [attachment_id.hex]
        try:
            written = await write_sealed(self.blobs, ring, attachment_id, stream.rest())
            width = height = thumbnail_key = thumbnail_size = None
            if content_type in types.THUMBNAILED:
                thumb = await self._draw_thumbnail(ring, attachment_id, written.size, content_type)
                thumb_id = uuid.uuid4()
                written_keys.append(thumb_id.hex)
                thumb_written = await write_sealed(self.blobs, ring, thumb_id, _once(thumb.data))
                width, height = thumb.width, thumb.height
                thumbnail_key, thumbnail_size = thumb_id.hex, thumb_written.size
            record = functools.partial(
                AttachmentRecord,
                id=attachment_id,
                thread_id=thread_id,
                uploader_user_id=principal.user_id,
                uploader_org_id=principal.org_id,
                filename_sealed=names.seal_name(ring, attachment_id, name),
                content_type=content_type,
                size_bytes=written.size,
                sha256=written.sha256,
                storage_key=attachment_id.hex,
                key_version=ring.active_version,
                width=width,
                height=height,
                thumbnail_key=thumbnail_key,
                thumbnail_size=thumbnail_size,
            )
            details = {
                "thread_id": str(thread_id),
                "content_type": content_type,
                "size": written.size,
                "sha256": written.sha256,
            }
            entry = _with_details(audit, attachment_id, details)
            return await self.storage.write(
                lambda now: rows.record_upload(record(created_at=now), self.limits.quota_bytes),
                audit=[entry],
            )
        except BaseException:
            with trio.CancelScope(shield=True), trio.move_on_after(_CLEANUP_S):
                for key in written_keys:
                    await self._forget_blob(key)
            raise

    async def _draw_thumbnail(
        self, ring: KeyRing, blob_id: UUID, size: int, content_type: str
    ) -> thumbnails.Thumbnail:
        source = io.BufferedReader(SealedFile(self.blobs, ring, blob_id, size), 1024 * 1024)
        return await trio.to_thread.run_sync(thumbnails.make_thumbnail, source, content_type)

    async def _forget_blob(self, key: str) -> None:
        try:
            await self.blobs.delete(key)
        except Exception:  # the sweep collects it later as a stray
            log.warning("attachments: could not remove blob %s; the sweep will", key, exc_info=True)

    # --- reading ---------------------------------------------------------------------------

    async def filename(self, record: AttachmentRecord) -> str:
        return await open_filename(self.storage, record)

    async def contents(
        self, record: AttachmentRecord, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        """Plaintext bytes start..end (inclusive) of the file, authenticated chunk by chunk."""
        ring = await self._ring(record.key_version)
        async for piece in read_plain(self.blobs, ring, record.id, record.size_bytes, start, end):
            yield piece

    async def thumbnail(self, record: AttachmentRecord) -> bytes | None:
        if record.thumbnail_key is None or record.thumbnail_size is None:
            return None
        ring = await self._ring(record.key_version)
        thumb_id = UUID(hex=record.thumbnail_key)
        pieces = [p async for p in read_plain(self.blobs, ring, thumb_id, record.thumbnail_size)]
        return b"".join(pieces)

    # --- removal ---------------------------------------------------------------------------

    async def remove_orphans(self, before: datetime, batch: int = 100) -> int:
        """Remove uploads never attached and made before `before`: each row first, then its
        blobs (a crash between leaves a stray blob, which `collect_strays` finds)."""
        removed = 0
        while True:
            found = await self.storage.read(rows.orphans(before, batch))
            for orphan in found:
                gone = await self._remove_orphan(orphan)
                if gone is not None:
                    removed += 1
                    for key in (gone.storage_key, gone.thumbnail_key):
                        if key is not None:
                            await self._forget_blob(key)
            if len(found) < batch:
                return removed

    async def _remove_orphan(self, orphan: AttachmentRecord) -> AttachmentRecord | None:
        entry = AuditEntry(
            action="attachment.expire",
            target_type="attachment",
            target_id=str(orphan.id),
            actor_org_id=orphan.uploader_org_id,
            details={"thread_id": str(orphan.thread_id), "size": orphan.size_bytes},
        )
        return await self.storage.write(
            lambda now: rows.delete_unattached(orphan.id),
            audit=lambda removed: [entry] if removed is not None else [],
        )

    async def remove_upload(
        self, record: AttachmentRecord, user_id: UUID, audit: AuditEntry
    ) -> None:
        """The uploader takes back an upload no message carries (a draft's file removed): its
        row, then its blobs, so its bytes stop counting against the quota at once."""
        gone = await self.storage.write(
            lambda now: rows.delete_own_upload(record.id, user_id), audit=[audit]
        )
        for key in (gone.storage_key, gone.thumbnail_key):
            if key is not None:
                await self._forget_blob(key)

    async def remove_blobs(self, keys: Sequence[str]) -> None:
        """Delete blobs whose rows are already gone (a deleted message's, a retention purge's);
        one that cannot be deleted now is left for the sweep, which collects blobs no row
        names."""
        for key in keys:
            await self._forget_blob(key)

    async def stray_keys(self) -> set[str]:
        """Blob keys no row names now."""
        keys = [key async for key in self.blobs.keys()]
        used: set[str] = set()
        for start in range(0, len(keys), 500):
            part = keys[start : start + 500]
            used |= await self.storage.read(rows.blob_keys_in_use(part))
        return set(keys) - used

    async def collect_strays(self, candidates: set[str]) -> tuple[int, set[str]]:
        """Delete the blobs that were strays at the previous look (`candidates`) and still are;
        returns how many went and this look's strays, for the next. Two looks apart, an upload
        whose blob is complete but whose row is not yet written is never taken for a stray."""
        now_strays = await self.stray_keys()
        doomed = now_strays & candidates
        for key in sorted(doomed):
            await self._forget_blob(key)
        return len(doomed), now_strays - doomed


async def _ring(storage: Storage, version: int | None = None) -> KeyRing:
    ring = storage.sealing.keyring
    if version is not None and not ring.has_version(version) and not ring.is_destroyed(version):
        ring = await storage.sealing.learn({version})  # made by another process
    return ring


async def open_filename(storage: Storage, record: AttachmentRecord) -> str:
    version = int(record.filename_sealed.partition(".")[0] or 0)
    return names.open_name(await _ring(storage, version), record.id, record.filename_sealed)


async def attachment_summaries(
    storage: Storage, principal: Principal, thread_id: UUID, ids: Sequence[UUID], client_msg_id: str
) -> list[dict[str, object]]:
    """What a message carrying these uploads stores about them (`metadata.attachments`),
    or Invalid naming the first that cannot be attached: not the sender's, of another
    thread, or already on a message. A retried send (same client_msg_id) finds its uploads
    on its own message and passes, so the storage answers it as the duplicate it is. The
    write checks again (`hub.storage.attachments.link_attachments`): a race is lost there."""
    unique = list(dict.fromkeys(ids))
    if len(unique) != len(ids):
        raise FieldInvalid("attachment_ids", "must not name an upload twice")
    found = await storage.read(rows.attachments_by_id(unique))
    summaries = []
    for attachment_id in unique:
        record = found.get(attachment_id)
        if record is None or record.uploader_user_id != principal.user_id:
            raise Invalid(f"attachment {attachment_id} is not one of your uploads")
        if record.thread_id != thread_id:
            raise Invalid(f"attachment {attachment_id} was uploaded to another thread")
        if record.message_id is not None and record.message_client_msg_id != client_msg_id:
            raise Invalid(
                f"attachment {attachment_id} is already attached to message {record.message_id}"
            )
        summaries.append(record.summary(await open_filename(storage, record)))
    return summaries


class _Counted:
    """A request body counted as it is read: PayloadTooLarge the moment it passes the limit,
    so a 10 GiB body costs the hub its first `limit` bytes, never its memory."""

    def __init__(self, body: AsyncIterable[bytes], limit: int) -> None:
        self._iterator = aiter(body)
        self._limit = limit
        self._buffer = b""
        self._size = 0
        self._ended = False

    async def _next(self) -> bytes | None:
        try:
            data = await anext(self._iterator)
        except StopAsyncIteration:
            self._ended = True
            return None
        self._size += len(data)
        if self._size > self._limit:
            raise _too_large(self._limit)
        return data

    async def head(self, size: int) -> bytes:
        """The first `size` bytes (fewer for a shorter file), kept for `rest` to hand on."""
        parts = []
        have = 0
        while have < size and not self._ended:
            data = await self._next()
            if data:
                parts.append(data)
                have += len(data)
        self._buffer = b"".join(parts)
        return self._buffer[:size]

    async def rest(self) -> AsyncIterator[bytes]:
        if self._buffer:
            yield self._buffer
            self._buffer = b""
        while not self._ended:
            data = await self._next()
            if data:
                yield data


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"the file is larger than the {limit}-byte limit (HUB_MAX_FILE_SIZE)",
        details=[{"max_bytes": limit}],
    )


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _with_details(entry: AuditEntry, attachment_id: UUID, details: dict) -> AuditEntry:
    return msgspec.structs.replace(
        entry, target_id=str(attachment_id), details={**entry.details, **details}
    )
