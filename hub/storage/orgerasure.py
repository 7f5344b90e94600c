"""Erasing an organization in the database: its data keys destroyed, its files' rows removed,
its webhooks ended, its name and its users' names pseudonymised, in one transaction.

Everything the organization wrote (messages, metadata, attachments and their names, webhook
secrets) was sealed under its own data keys (`hub.storage.keys`), so overwriting those keys is
the erasure: the ciphertext stays where it is, in this database, its replicas and its backups,
and no longer opens anywhere (docs/privacy.md says what this answers and what it does not).
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import msgspec

from hub.errors import Conflict, NotFound
from hub.storage import keys
from hub.storage.sql import Op, execute, fetch, fetchrow, fetchval

ERASED_ORGANIZATION = "Erased organization"
ERASED_USER = "Erased user"


class ErasedOrganization(msgspec.Struct, frozen=True):
    """What one erasure did (counts only, for the audit row and the operator)."""

    organization_id: UUID
    key_versions: list[int]
    messages: int
    attachments: int
    users: int
    webhooks: int
    blob_keys: tuple[str, ...] = ()


def erase_organization(organization_id: UUID, now: datetime) -> Op[ErasedOrganization]:
    """NotFound for an organization the hub does not know; Conflict when it was erased
    already (nothing left to destroy)."""
    org = yield fetchrow("SELECT id, erased_at FROM organizations WHERE id = $1", organization_id)
    if org is None:
        raise NotFound(f"organization {organization_id} not found")
    if org["erased_at"] is not None:
        raise Conflict(f"organization {organization_id} was erased already")
    versions = yield from keys.destroy_organization_keys(organization_id, now)
    messages = yield fetchval(
        "SELECT count(*) FROM thread_messages WHERE sender_org_id = $1", organization_id
    )
    # Its files' rows go now (their contents no longer open), their blobs after the commit.
    files = yield fetch(
        "DELETE FROM message_attachments WHERE uploader_org_id = $1 "
        "RETURNING storage_key, thumbnail_key",
        organization_id,
    )
    blob_keys = tuple(key for f in files for key in (f["storage_key"], f["thumbnail_key"]) if key)
    webhooks = yield fetch(
        "UPDATE organization_webhooks SET deleted_at = $2 "
        "WHERE organization_id = $1 AND deleted_at IS NULL RETURNING id",
        organization_id,
        now,
    )
    # Nothing more is sent to its users or its receivers; what was sent stays sent.
    yield execute(
        "UPDATE notification_deliveries SET status = 'dead', last_error = 'the organization "
        "was erased' WHERE status = 'pending' AND (webhook_id IN (SELECT id FROM "
        "organization_webhooks WHERE organization_id = $1) OR notification_id IN (SELECT n.id "
        "FROM user_notifications AS n JOIN user_profiles AS u ON u.id = n.user_id "
        "WHERE u.organization_id = $1))",
        organization_id,
    )
    # It is in no wedding any more: every access check refuses it from this commit on.
    yield execute(
        "UPDATE vendor_connections SET status = 'removed', updated_at = $2 "
        "WHERE organization_id = $1 AND status IN ('invited', 'active')",
        organization_id,
        now,
    )
    users = yield fetch(
        "UPDATE user_profiles SET display_name = $2, username = 'erased', email = NULL, "
        "updated_at = $3 WHERE organization_id = $1 RETURNING id",
        organization_id,
        ERASED_USER,
        now,
    )
    yield execute(
        "UPDATE organizations SET name = $2, erased_at = $3, updated_at = $3 WHERE id = $1",
        organization_id,
        ERASED_ORGANIZATION,
        now,
    )
    return ErasedOrganization(
        organization_id=organization_id,
        key_versions=versions,
        messages=int(messages),
        attachments=len(files),
        users=len(users),
        webhooks=len(webhooks),
        blob_keys=blob_keys,
    )


def organization_erased(organization_id: UUID) -> Op[bool]:
    """Whether the organization was erased (its tokens are refused from then on)."""
    erased = yield fetchval(
        "SELECT 1 FROM organizations WHERE id = $1 AND erased_at IS NOT NULL", organization_id
    )
    return erased is not None
