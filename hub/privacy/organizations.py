"""Erasing an organization (`hub erase org ID`): one step that makes everything it ever wrote
unreadable everywhere, by destroying its data keys (`hub.storage.orgerasure`).

After the commit: its attachments' blobs are deleted, SQLite's WAL is truncated and, on
PostgreSQL, the key table is rewritten (`Engine.scrub_keys`), so no copy of the destroyed keys is
left in the live database's files. Every running node forgets them, closes the organization's
sockets and refuses its tokens within `HUB_KEY_CHECK_S` (`hub.actors.keywatch`; a node that
erases checks at once).
"""

from __future__ import annotations

from uuid import UUID

import msgspec

from hub.attachments.service import Attachments
from hub.storage import Storage
from hub.storage.orgerasure import ErasedOrganization, erase_organization
from hub.storage.records import AuditEntry


async def erase(
    storage: Storage,
    attachments: Attachments | None,
    organization_id: UUID,
    entry: AuditEntry,
) -> ErasedOrganization:
    """Erase the organization and write `entry` (given the counts, never content) with it."""

    def audited(done: ErasedOrganization) -> list[AuditEntry]:
        details = {
            **entry.details,
            "key_versions": done.key_versions,
            "messages": done.messages,
            "attachments": done.attachments,
            "users": done.users,
            "webhooks": done.webhooks,
        }
        return [msgspec.structs.replace(entry, details=details)]

    done = await storage.write(lambda now: erase_organization(organization_id, now), audit=audited)
    await storage.engine.scrub_keys()
    await storage.engine.scrub()
    if attachments is not None and done.blob_keys:
        await attachments.remove_blobs(done.blob_keys)
    return done
