"""`hub keys reseal`: seal again, under their organization's own data key, the messages, files,
file names and webhook secrets written before per-organization keys (migration 0009), which
the hub-wide key sealed; until then erasing an organization does not reach them
(docs/privacy.md). Batch after batch, safe to stop and run again; a row changed meanwhile (an
edit or a deletion sealed it anew) is left as it now is.
"""

from __future__ import annotations

import uuid
from uuid import UUID

import msgspec

from hub.attachments import names
from hub.attachments.sealedfiles import read_plain, write_sealed
from hub.attachments.service import Attachments
from hub.crypto import Sealed
from hub.storage import Storage
from hub.storage import reseal as rows
from hub.storage.webhooks import secret_aad

BATCH = 200


class Resealed(msgspec.Struct):
    messages: int = 0
    attachments: int = 0
    webhooks: int = 0


async def reseal(storage: Storage, attachments: Attachments, batch: int = BATCH) -> Resealed:
    """Reseal every legacy row; the counts of what was sealed anew."""
    done = Resealed()
    hub_ring = storage.sealing.keyring
    after = 0
    while True:
        found = await storage.read(rows.legacy_messages(after, batch))
        for row in found:
            ring = await storage.sealing.ring_for(row["sender_org_id"])
            thread_id = row["thread_id"]
            old = Sealed(
                bytes(row["body_ciphertext"]), bytes(row["body_nonce"]), row["key_version"]
            )
            body = hub_ring.open_message(thread_id, old)
            metadata = hub_ring.open_metadata(thread_id, row["metadata"])
            new = ring.seal_message(thread_id, body)
            sealed = (
                new.ciphertext,
                new.nonce,
                new.key_version,
                ring.seal_metadata(thread_id, metadata),
            )
            if await storage.write(
                lambda _, r=row, s=sealed: rows.resealed_message(r["id"], r["key_version"], s)
            ):
                done.messages += 1
        if len(found) < batch:
            break
        after = found[-1]["id"]
    cursor = UUID(int=0)
    while True:
        found = await storage.read(rows.legacy_attachments(cursor, batch))
        for row in found:
            await _reseal_attachment(storage, attachments, row)
            done.attachments += 1
        if len(found) < batch:
            break
        cursor = found[-1]["id"]
    hub_wide = await storage.read(rows.hub_wide_versions())
    for row in await storage.read(rows.webhooks_with_secrets()):
        if int(row["secret_sealed"].partition(".")[0] or 0) not in hub_wide:
            continue
        ring = await storage.sealing.ring_for(row["organization_id"])
        aad = secret_aad(row["id"])
        secret = ring.seal_text(aad, hub_ring.open_text(aad, row["secret_sealed"]))
        await storage.write(
            lambda _, r=row, s=secret: rows.resealed_webhook(r["id"], r["secret_sealed"], s)
        )
        done.webhooks += 1
    return done


async def _reseal_attachment(storage: Storage, attachments: Attachments, row: dict) -> None:
    """The file's blob (and its thumbnail's) written again under the new key, each in place:
    a blob names its key's version in its header, so readers follow at once; then its name
    and its row's version."""
    hub_ring = storage.sealing.keyring
    ring = await storage.sealing.ring_for(row["uploader_org_id"])
    blobs = attachments.blobs
    for key, size in (
        (row["storage_key"], row["size_bytes"]),
        (row["thumbnail_key"], row["thumbnail_size"]),
    ):
        if key is None or size is None:
            continue
        blob_id = uuid.UUID(hex=key)
        await write_sealed(blobs, ring, blob_id, read_plain(blobs, hub_ring, blob_id, size))
    name = names.open_name(hub_ring, row["id"], row["filename_sealed"])
    sealed_name = names.seal_name(ring, row["id"], name)
    await storage.write(
        lambda _: rows.resealed_attachment(row["id"], ring.active_version, sealed_name)
    )
