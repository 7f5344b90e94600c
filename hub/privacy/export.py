"""An export: everything the hub holds about a user, or an organization, as one zip archive.

GDPR article 15 gives a person a copy of their personal data, article 20 that data in a form a
machine reads; an organization's owner asks the same of its data. The archive is made as it is
sent (`stream`): rows are read a page at a time (`hub.storage.exports`), messages and file
names opened with the data keys, attachments decrypted chunk by chunk from the blob store into
their entries, so memory stays bounded whatever the subject holds.

What is in it, and what is not, is written in its `manifest.json` (`FILES`): the subject's own
messages with the context of their threads (title, wedding), never other people's messages,
which are those people's data; webhooks without their secrets; audit rows about the subject,
with the address and browser of other people who acted on them left out. The rows are read one
page after another, not from one snapshot: what changes while an export is made may or may not
be in it (`generated_at` is when it began).
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import msgspec

from hub import __version__
from hub.attachments.service import Attachments, open_filename
from hub.crypto import KeyRing, Sealed
from hub.errors import NotFound
from hub.privacy.archive import ZipStream, pieces
from hub.storage import Storage
from hub.storage import exports as rows
from hub.storage.attachments import AttachmentRecord
from hub.storage.exports import LISTINGS, Listing, Subject
from hub.storage.identities import get_organization, get_user
from hub.storage.records import AuditEntry, row_to

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
PAGE_ROWS = 500
_THREADS_PER_READ = 200

# What each file of the archive holds, as the manifest tells its reader.
FILES: dict[str, str] = {
    "manifest.json": "This file: the format, when and for whom the archive was made, how many "
    "records each file holds, and what each file is.",
    "profile.json": "The user as the hub knows them (from their sign-in): name, username, "
    "e-mail address if one was given, role, and their organization.",
    "organization.json": "The organization: its name and type.",
    "users.json": "The organization's users as the hub knows them.",
    "messages.json": "Messages the subject sent, oldest first, with their text and metadata "
    "(mentions, attached files, locations) decrypted, and the thread and wedding each was "
    "sent in. Deleted messages appear without their text. Other people's messages are not "
    "included: they are those people's personal data.",
    "threads.json": "Every thread named anywhere in this archive: title, type, priority, "
    "status, and its group (wedding) with its name and date. No messages of others.",
    "receipts.json": "Read marks: how far each thread has been read, and when.",
    "presence.json": "The last presence (online, away, busy, offline) stored per thread.",
    "preferences.json": "Notification preferences: channels, quiet hours, time zone, consent "
    "to e-mail. Absent rows mean the defaults.",
    "mutes.json": "Threads muted, and since when.",
    "notifications.json": "In-app notifications: why (a mention, a request to confirm, a "
    "reminder), about which message, and when read.",
    "acknowledgements.json": "Confirmations given of messages that asked for one.",
    "audit.json": "Audit rows of actions taken by the subject or about them. The address and "
    "browser of other people's actions are left out.",
    "attachments.json": "Files uploaded, with their name, type, size, SHA-256, the message "
    "(seq) they were sent with, and their path in this archive.",
    "attachments/": "The uploaded files themselves, decrypted: attachments/<id>/<name>.",
    "webhooks.json": "The organization's webhooks: URL, events, when made or deleted. Their "
    "signing secrets are never exported.",
    "groups.json": "Groups (weddings) the organization owns.",
    "group_members.json": "The member organizations of those groups.",
    "clients.json": "The couples the organization keeps contact details of: names, e-mail, "
    "phone, wedding date, venue.",
}

_FILE_OF = {
    "messages": "messages.json",
    "users": "users.json",
    "receipts": "receipts.json",
    "presence": "presence.json",
    "preferences": "preferences.json",
    "mutes": "mutes.json",
    "notifications": "notifications.json",
    "acknowledgements": "acknowledgements.json",
    "audit": "audit.json",
    "attachments": "attachments.json",
    "webhooks": "webhooks.json",
    "groups": "groups.json",
    "group_members": "group_members.json",
    "clients": "clients.json",
}

_encoder = msgspec.json.Encoder()
_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\:*?\"<>|]")


def archive_name(subject: Subject, day: datetime) -> str:
    """The file name a download is saved under: `hub-export-<user id>-<date>.zip`, or
    `hub-export-organization-<id>-<date>.zip`. Ids, not names: they are safe in a header and
    on any file system, and tell two people of the same name apart."""
    who = str(subject.id) if subject.kind == "user" else f"organization-{subject.id}"
    return f"hub-export-{who}-{day:%Y-%m-%d}.zip"


class Exporter:
    """Makes exports from the storage and the attachments' blob store."""

    def __init__(self, storage: Storage, attachments: Attachments) -> None:
        self.storage = storage
        self.attachments = attachments

    async def check(self, subject: Subject) -> None:
        """NotFound unless the hub knows the subject (the CLI takes any id)."""
        if not await self.storage.read(rows.subject_exists(subject)):
            raise NotFound(f"{subject.kind} {subject.id} not found")

    async def counts(self, subject: Subject) -> dict[str, int]:
        """How many rows each file will hold, as the database has them now (the audit row)."""
        found = await self.storage.read(rows.counts(subject))
        return {_FILE_OF[name]: n for name, n in found.items()}

    async def record(self, entry: AuditEntry, subject: Subject, counts: dict[str, int]) -> None:
        """Write the export's audit row (`privacy.export`): who asked, for whom, how many rows
        of each kind; never any content."""
        details = {**entry.details, "subject_type": subject.kind, "counts": counts}
        audited = msgspec.structs.replace(
            entry,
            action="privacy.export",
            target_type=subject.kind,
            target_id=str(subject.id),
            details=details,
        )
        await self.storage.write(_nothing, audit=[audited])

    async def stream(
        self, subject: Subject, *, generated_at: datetime | None = None
    ) -> AsyncIterator[bytes]:
        """The archive's bytes, piece by piece."""
        moment = generated_at or datetime.now(UTC)
        run = _Run(self, subject)
        zip_ = ZipStream()
        if subject.kind == "user":
            async for out in zip_.add_bytes("profile.json", _json(await run.profile())):
                yield out
        else:
            organization = await self.storage.read(get_organization(subject.id))
            async for out in zip_.add_bytes("organization.json", _json(organization)):
                yield out
        for listing in LISTINGS[subject.kind]:
            if listing is rows.ATTACHMENTS:
                async for out in run.attachments(zip_):
                    yield out
                continue
            name = _FILE_OF[listing.name]
            large = listing in (rows.MESSAGES, rows.AUDIT)
            async for out in zip_.add(name, pieces(run.json_array(listing)), large=large):
                yield out
        async for out in zip_.add("threads.json", pieces(run.threads())):
            yield out
        manifest = {
            "format": "vendor-connections-hub export",
            "format_version": FORMAT_VERSION,
            "generated_at": moment,
            "hub_version": __version__,
            "subject": {"type": subject.kind, "id": subject.id},
            "counts": run.counts,
            "scope": "Only the subject's own messages are included, with the title and "
            "wedding of their threads; other people's messages are their personal data.",
            "files": {name: FILES[name] for name in _files_of(subject)},
        }
        async for out in zip_.add_bytes("manifest.json", _json(manifest)):
            yield out
        yield zip_.finish()


def _files_of(subject: Subject) -> list[str]:
    first = ["manifest.json", "profile.json" if subject.kind == "user" else "organization.json"]
    listed = [_FILE_OF[listing.name] for listing in LISTINGS[subject.kind]]
    return [*first, *listed, "attachments/", "threads.json"]


class _Run:
    """One export's progress: the counts so far and the threads its rows have named."""

    def __init__(self, exporter: Exporter, subject: Subject) -> None:
        self.storage = exporter.storage
        self.attachments_service = exporter.attachments
        self.subject = subject
        self.counts: dict[str, int] = {}
        self.thread_ids: set[UUID] = set()

    async def profile(self) -> dict[str, Any]:
        user = await self.storage.read(get_user(self.subject.id))
        organization = await self.storage.read(get_organization(user.organization_id))
        return {
            "user": user,
            "organization": {
                "id": organization.id,
                "name": organization.name,
                "vendor_type": organization.vendor_type,
            },
        }

    async def pages(self, listing: Listing) -> AsyncIterator[list[dict[str, Any]]]:
        after: tuple[Any, ...] | None = None
        while True:
            found = await self.storage.read(rows.page(listing, self.subject, after, PAGE_ROWS))
            if found:
                yield found
            if len(found) < PAGE_ROWS:
                return
            after = tuple(found[-1][name] for name in listing.key_names)

    async def json_array(self, listing: Listing) -> AsyncIterator[bytes]:
        """The listing as a JSON array, one record a line, written page by page."""
        shape = _SHAPERS.get(listing.name, _as_is)
        name = _FILE_OF[listing.name]
        self.counts[name] = 0
        yield b"["
        async for found in self.pages(listing):
            records = await shape(self, found)
            for record in records:
                thread_id = record.get("thread_id")
                if thread_id is not None:
                    self.thread_ids.add(thread_id)
                yield (b",\n" if self.counts[name] else b"\n") + _encoder.encode(record)
                self.counts[name] += 1
        yield b"\n]\n"

    async def threads(self) -> AsyncIterator[bytes]:
        ids = sorted(self.thread_ids, key=str)
        self.counts["threads.json"] = 0
        yield b"["
        for start in range(0, len(ids), _THREADS_PER_READ):
            found = await self.storage.read(
                rows.thread_contexts(ids[start : start + _THREADS_PER_READ])
            )
            for record in found:
                first = self.counts["threads.json"] == 0
                yield (b"\n" if first else b",\n") + _encoder.encode(record)
                self.counts["threads.json"] += 1
        yield b"\n]\n"

    async def attachments(self, zip_: ZipStream) -> AsyncIterator[bytes]:
        """The index (`attachments.json`) first, then each file, decrypted as it is read from
        the blob store into its entry. Both walk the same pages, the files up to the last
        upload the index listed, so the index names every file the archive holds (an upload
        removed in between, a draft's file, is listed without its entry)."""
        last: list[tuple[Any, ...]] = []

        async def index() -> AsyncIterator[bytes]:
            self.counts["attachments.json"] = 0
            yield b"["
            async for found in self.pages(rows.ATTACHMENTS):
                for row in found:
                    record = _attachment(row)
                    self.thread_ids.add(record.thread_id)
                    filename = await open_filename(self.storage, record)
                    entry = {
                        "id": record.id,
                        "filename": filename,
                        "content_type": record.content_type,
                        "size": record.size_bytes,
                        "sha256": record.sha256,
                        "thread_id": record.thread_id,
                        "message_id": record.message_id,
                        "message_seq": row["message_seq"],
                        "uploader_user_id": record.uploader_user_id,
                        "created_at": record.created_at,
                        "path": _entry_path(record.id, filename),
                    }
                    first = self.counts["attachments.json"] == 0
                    yield (b"\n" if first else b",\n") + _encoder.encode(entry)
                    self.counts["attachments.json"] += 1
                last[:] = [(found[-1]["id"],)]
            yield b"\n]\n"

        async for out in zip_.add("attachments.json", pieces(index())):
            yield out
        if not last:
            return
        self.counts["attachments/"] = 0
        (final,) = last
        async for found in self.pages(rows.ATTACHMENTS):
            for row in found:
                # UUIDs sort as their text does, on PostgreSQL as on SQLite.
                if str(row["id"]) > str(final[0]):
                    return
                record = _attachment(row)
                name = _entry_path(record.id, await open_filename(self.storage, record))
                contents = self.attachments_service.contents(record) if record.size_bytes else None
                async for out in zip_.add(
                    name,
                    contents if contents is not None else _no_bytes(),
                    compress=False,
                    size_hint=record.size_bytes,
                ):
                    yield out
                self.counts["attachments/"] += 1


async def _no_bytes() -> AsyncIterator[bytes]:
    return
    yield b""


def _attachment(row: dict[str, Any]) -> AttachmentRecord:
    return row_to({k: v for k, v in row.items() if k != "message_seq"}, AttachmentRecord)


def _entry_path(attachment_id: UUID, filename: str) -> str:
    """Where a file lies in the archive: under its id (names repeat), with a name that cannot
    climb out of its folder or upset a file system."""
    name = _UNSAFE.sub("_", filename).strip(" .") or "file"
    return f"attachments/{attachment_id}/{name[:200]}"


async def _as_is(_run: _Run, found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return found


async def _messages(run: _Run, found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Sent messages, opened with the data keys directly (not through the memory of recently
    opened messages, which an export would only flush of what readers need)."""
    ring: KeyRing = run.storage.sealing.keyring
    if any(not ring.has_version(row["key_version"]) for row in found):
        ring = await run.storage.sealing.load_keys()
    out = []
    for row in found:
        deleted = row["deleted_at"] is not None
        body = metadata = None
        if not deleted:  # a tombstone's ciphertext is gone (overwritten when deleted)
            body = ring.open_message(
                row["thread_id"],
                Sealed(bytes(row["body_ciphertext"]), bytes(row["body_nonce"]), row["key_version"]),
            )
            metadata = ring.open_metadata(row["thread_id"], row["metadata"])
        out.append(
            {
                "id": row["id"],
                "thread_id": row["thread_id"],
                "thread_title": row["thread_title"],
                "group_id": row["group_id"],
                "group_name": row["group_name"],
                "wedding_date": row["wedding_date"],
                "seq": row["seq"],
                "sender_user_id": row["sender_user_id"],
                "sender_org_id": row["sender_org_id"],
                "kind": row["kind"],
                "body": body,
                "metadata": metadata,
                "requires_ack": row["requires_ack"],
                "reply_to": row["reply_to"],
                "client_msg_id": row["client_msg_id"],
                "created_at": row["created_at"],
                "edited_at": row["edited_at"],
                "deleted_at": row["deleted_at"],
            }
        )
    return out


async def _audit(run: _Run, found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows about the subject that someone else acted in keep who acted, but not from where or
    with which browser: that is the other person's data."""
    own = "actor_user_id" if run.subject.kind == "user" else "actor_org_id"
    out = []
    for row in found:
        if row[own] != run.subject.id:
            row = {**row, "ip": None, "user_agent": None}
        out.append(row)
    return out


_SHAPERS: dict[str, Callable[[_Run, list[dict[str, Any]]], Any]] = {
    "messages": _messages,
    "audit": _audit,
}


def _json(value: Any) -> bytes:
    return msgspec.json.format(_encoder.encode(value), indent=2) + b"\n"


def _nothing(_now: object):  # type: ignore[no-untyped-def]
    """A write of nothing but its audit row."""
    return None
    yield
