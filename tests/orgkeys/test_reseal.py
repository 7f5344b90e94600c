"""`hub keys reseal`, both backends: rows sealed under the hub-wide key (as everything was
before per-organization keys) are sealed again under their organization's key, reading the
same afterwards, so that erasing the organization reaches them too."""

from __future__ import annotations

import uuid

from hub.attachments import names
from hub.attachments.sealedfiles import read_plain, write_sealed
from hub.crypto import Sealed
from hub.privacy.organizations import erase
from hub.privacy.reseal import reseal
from hub.storage.records import AuditEntry
from hub.storage.sql import Op, execute
from hub.storage.webhooks import secret_aad
from tests.attachments.conftest import png
from tests.notifications.conftest import Wedding


async def run(wedding: Wedding, sql: str, *args) -> None:
    def op(_) -> Op[None]:
        yield execute(sql, *args)

    await wedding.hub.storage.write(op)


async def make_legacy(wedding: Wedding) -> dict:
    """The florist's rows, sealed again under the hub-wide key as before migration 0009."""
    storage = wedding.hub.storage
    hub_ring = storage.sealing.keyring
    org_ring = await storage.sealing.ring_for(wedding.florist.org_id)
    hub_version = hub_ring.active_version
    message = await wedding.post(wedding.florist, "Old words", metadata={"note": "old"})
    [row] = await wedding.rows(
        "SELECT id, body_ciphertext, body_nonce, key_version, metadata FROM thread_messages "
        "WHERE id = $1",
        message.json["id"],
    )
    thread_id = wedding.thread.id
    body = org_ring.open_message(
        thread_id,
        Sealed(bytes(row["body_ciphertext"]), bytes(row["body_nonce"]), row["key_version"]),
    )
    metadata = org_ring.open_metadata(thread_id, row["metadata"])
    old = hub_ring.seal_message(thread_id, body)
    await run(
        wedding,
        "UPDATE thread_messages SET body_ciphertext = $2, body_nonce = $3, key_version = $4, "
        "metadata = $5 WHERE id = $1",
        row["id"],
        old.ciphertext,
        old.nonce,
        hub_version,
        hub_ring.seal_metadata(thread_id, metadata),
    )

    data = png()
    upload = await wedding.rest.upload(
        wedding.florist, thread_id, data, filename="arch.png", content_type="image/png"
    )
    [file] = await wedding.rows(
        "SELECT id, filename_sealed, size_bytes, storage_key, thumbnail_key, thumbnail_size "
        "FROM message_attachments WHERE id = $1",
        uuid.UUID(upload.json["id"]),
    )
    blobs = wedding.hub.attachments.blobs
    for key, size in (
        (file["storage_key"], file["size_bytes"]),
        (file["thumbnail_key"], file["thumbnail_size"]),
    ):
        if key is not None:
            blob = uuid.UUID(hex=key)
            await write_sealed(blobs, hub_ring, blob, read_plain(blobs, org_ring, blob, size))
    name = names.open_name(org_ring, file["id"], file["filename_sealed"])
    await run(
        wedding,
        "UPDATE message_attachments SET key_version = $2, filename_sealed = $3 WHERE id = $1",
        file["id"],
        hub_version,
        names.seal_name(hub_ring, file["id"], name),
    )

    hook = await wedding.rest.call(
        "POST", "/webhooks", wedding.florist_admin, json_body={"url": "https://hooks.example/b"}
    )
    assert hook.status == 201, hook.body
    hook_id = uuid.UUID(hook.json["id"])
    await run(
        wedding,
        "UPDATE organization_webhooks SET secret_sealed = $2 WHERE id = $1",
        hook_id,
        hub_ring.seal_text(secret_aad(hook_id), hook.json["secret"]),
    )
    return {
        "message": row["id"],
        "file": file["id"],
        "data": data,
        "hook": hook_id,
        "secret": hook.json["secret"],
    }


async def test_legacy_rows_are_sealed_again_under_their_organizations_key(wedding: Wedding):
    legacy = await make_legacy(wedding)
    storage = wedding.hub.storage
    org_version = storage.sealing.keyring.organizations[wedding.florist.org_id]

    done = await reseal(storage, wedding.hub.attachments)
    assert (done.messages, done.attachments, done.webhooks) == (1, 1, 1)
    assert (await reseal(storage, wedding.hub.attachments)).messages == 0  # nothing left

    [message] = await wedding.rows(
        "SELECT key_version FROM thread_messages WHERE id = $1", legacy["message"]
    )
    [file] = await wedding.rows(
        "SELECT key_version FROM message_attachments WHERE id = $1", legacy["file"]
    )
    assert message["key_version"] == file["key_version"] == org_version
    page = await wedding.rest.call("GET", f"/threads/{wedding.thread.id}", wedding.dj)
    [shown] = [m for m in page.json["messages"] if m["id"] == legacy["message"]]
    assert (shown["body"], shown["metadata"]) == ("Old words", {"note": "old"})
    download = await wedding.rest.call("GET", f"/attachments/{legacy['file']}", wedding.dj)
    assert download.status == 200 and download.body == legacy["data"]
    info = await wedding.rest.call("GET", f"/attachments/{legacy['file']}/info", wedding.dj)
    assert info.json["filename"] == "arch.png"
    [hook] = await wedding.rows(
        "SELECT secret_sealed FROM organization_webhooks WHERE id = $1", legacy["hook"]
    )
    ring = storage.sealing.keyring
    assert ring.open_text(secret_aad(legacy["hook"]), hook["secret_sealed"]) == legacy["secret"]
    assert int(hook["secret_sealed"].partition(".")[0]) == org_version

    # And now the organization's erasure reaches them.
    entry = AuditEntry(action="privacy.erase_organization", target_type="organization")
    await erase(storage, wedding.hub.attachments, wedding.florist.org_id, entry)
    assert wedding.hub.key_watch is not None
    await wedding.hub.key_watch.check()
    page = await wedding.rest.call("GET", f"/threads/{wedding.thread.id}", wedding.dj)
    [gone] = [m for m in page.json["messages"] if m["id"] == legacy["message"]]
    assert (gone["body"], gone["erased"]) == ("", True)
    assert (
        await wedding.rows("SELECT id FROM message_attachments WHERE id = $1", legacy["file"]) == []
    )
    left = [key async for key in wedding.hub.attachments.blobs.keys()]
    assert legacy["file"].hex not in left
