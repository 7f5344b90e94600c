"""Exports over REST: `GET /me/export` (the caller's own data) and `GET /me/organization/export`
(their organization's, for its owner), each one zip archive (`hub.privacy.export`).

The archive is streamed as it is made: the answer has no length, and neither the hub nor a
proxy holds it whole. Before the first byte, the export's audit row is committed with how many
rows of each kind it holds (`privacy.export`), so an export is on record even if the download
is cut short. Exports have a rate class of their own (`HUB_RATE_EXPORT_PER_S` / `_BURST`): each
reads everything its subject holds.
"""

from __future__ import annotations

from datetime import UTC, datetime

from quart import Blueprint, Response

from hub.access import may_export_organization
from hub.http.attachments import current_attachments
from hub.http.identity import audit, current_principal, current_storage
from hub.http.openapi import errors, raw
from hub.privacy.export import Exporter, archive_name
from hub.storage.exports import Subject

blueprint = Blueprint("export", __name__)

# How long sending one archive may take (Quart's default for a streamed answer is 60 s, which
# a large export to a phone would pass).
EXPORT_TIMEOUT_S = 3600.0

_ARCHIVE = {200: ("application/zip", "the archive: a zip of JSON files and the files uploaded")}


@blueprint.get("/me/export")
@errors()
@raw(_ARCHIVE)
async def export_me() -> Response:
    """Everything the hub holds about the caller (GDPR articles 15 and 20), as a zip archive
    streamed as it is made: their profile, the messages they sent (decrypted, with their
    threads' titles and weddings; never other people's messages), read marks, presence,
    notification preferences and mutes, notifications, confirmations given, the audit rows
    about them, and the files they uploaded. `manifest.json` in it says what each file holds.
    The export is audited (`privacy.export`)."""
    principal = current_principal()
    return await _export(Subject("user", principal.user_id))


@blueprint.get("/me/organization/export")
@errors(403)
@raw(_ARCHIVE)
async def export_organization() -> Response:
    """The caller's organization's data, for its owner (403 for any other role): the same as
    `/me/export` for each of its users, with its users' list, its webhooks (URLs and events,
    never their secrets) and the groups it owns with their members."""
    principal = current_principal()
    may_export_organization(principal)
    return await _export(Subject("organization", principal.org_id))


async def _export(subject: Subject) -> Response:
    exporter = Exporter(current_storage(), current_attachments())
    counts = await exporter.counts(subject)
    await exporter.record(
        audit("privacy.export", subject.kind, subject.id, group_id=None), subject, counts
    )
    now = datetime.now(UTC)
    headers = {
        "Content-Type": "application/zip",
        "Content-Disposition": f'attachment; filename="{archive_name(subject, now)}"',
        "Cache-Control": "private, no-store",
        "X-Content-Type-Options": "nosniff",
    }
    response = Response(exporter.stream(subject, generated_at=now), 200, headers)
    response.timeout = EXPORT_TIMEOUT_S
    return response
