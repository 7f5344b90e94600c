"""Rows sealed under the hub-wide data key (written before per-organization keys, migration
0009), found in batches and sealed again under their organization's key, so that erasing the
organization (`hub.storage.orgerasure`) reaches them too (`hub keys reseal`)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from hub.storage.sql import Op, execute, fetch

_HUB_WIDE = "SELECT version FROM message_encryption_keys WHERE organization_id IS NULL"


def hub_wide_versions() -> Op[set[int]]:
    found = yield fetch(_HUB_WIDE)
    return {row["version"] for row in found}


def legacy_messages(after_id: int, limit: int) -> Op[list[dict[str, Any]]]:
    """Messages (not tombstones) under a hub-wide key, by id after `after_id`."""
    return (
        yield fetch(
            "SELECT id, thread_id, sender_org_id, body_ciphertext, body_nonce, key_version, "
            "metadata FROM thread_messages WHERE key_version IN (SELECT version FROM "
            "message_encryption_keys WHERE organization_id IS NULL) AND deleted_at IS NULL "
            "AND id > $1 ORDER BY id LIMIT $2",
            after_id,
            limit,
        )
    )


def resealed_message(
    message_id: int, old_version: int, sealed: tuple[bytes, bytes, int, dict]
) -> Op[bool]:
    """Store a message sealed anew, unless it changed since it was read (an edit or a deletion
    sealed it themselves); whether it was stored."""
    ciphertext, nonce, version, metadata = sealed
    rows = yield fetch(
        "UPDATE thread_messages SET body_ciphertext = $3, body_nonce = $4, key_version = $5, "
        "metadata = $6 WHERE id = $1 AND key_version = $2 AND deleted_at IS NULL RETURNING id",
        message_id,
        old_version,
        ciphertext,
        nonce,
        version,
        metadata,
    )
    return bool(rows)


def legacy_attachments(after_id: UUID, limit: int) -> Op[list[dict[str, Any]]]:
    """Attachments under a hub-wide key, by id after `after_id`."""
    return (
        yield fetch(
            "SELECT id, uploader_org_id, filename_sealed, size_bytes, storage_key, "
            "thumbnail_key, thumbnail_size, key_version FROM message_attachments "
            "WHERE key_version IN (SELECT version FROM message_encryption_keys "
            "WHERE organization_id IS NULL) AND id > $1 ORDER BY id LIMIT $2",
            after_id,
            limit,
        )
    )


def resealed_attachment(attachment_id: UUID, version: int, filename_sealed: str) -> Op[None]:
    yield execute(
        "UPDATE message_attachments SET key_version = $2, filename_sealed = $3 WHERE id = $1",
        attachment_id,
        version,
        filename_sealed,
    )


def webhooks_with_secrets() -> Op[list[dict[str, Any]]]:
    return (
        yield fetch(
            "SELECT id, organization_id, secret_sealed FROM organization_webhooks "
            "WHERE deleted_at IS NULL ORDER BY id"
        )
    )


def resealed_webhook(webhook_id: UUID, old: str, secret_sealed: str) -> Op[None]:
    yield execute(
        "UPDATE organization_webhooks SET secret_sealed = $3 WHERE id = $1 AND secret_sealed = $2",
        webhook_id,
        old,
        secret_sealed,
    )
