"""Posting a message, and changing it (its sender's edit, a deletion), whichever door it comes
through.

REST and WebSocket both post through a `MessageRouter`. Without the realtime layer it is
`DirectRouter`: check access, store, answer. The realtime supervisor implements the same protocol
and also fans the committed message out to the thread's live subscribers, so a message posted over
REST reaches sockets exactly like one sent over a socket.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

import msgspec

from hub import protocol
from hub.access import (
    decided_in_write,
    may_delete_message,
    may_edit_message,
    thread_access,
)
from hub.attachments.service import attachment_summaries
from hub.auth import Principal
from hub.errors import FieldInvalid, Forbidden
from hub.frames import event_frame
from hub.notifications.mentions import find_mentions, mentions_metadata
from hub.storage import Storage, changes
from hub.storage.acknowledgements import Acknowledgement, acknowledge
from hub.storage.actor import AuditSpec, SendTiming
from hub.storage.notifications import mention_directory
from hub.storage.records import AuditEntry, Mentions, MessageDraft, StoredMessage
from hub.storage.sql import Op
from hub.validation import message_content


async def compose_draft(
    storage: Storage,
    principal: Principal,
    thread_id: UUID,
    *,
    client_msg_id: str,
    kind: str,
    body: str,
    metadata: dict[str, Any],
    latitude: float | None = None,
    longitude: float | None = None,
    attachment_ids: Sequence[UUID] = (),
    reply_to: int | None = None,
    requires_ack: bool = False,
) -> MessageDraft:
    """A client's new message as either door receives it, checked (`message_content`) and
    completed with what the hub adds: its uploads (`metadata.attachments`) and its mentions,
    resolved against the thread's members now (`metadata.mentions`). A change of plan always
    asks for acknowledgement."""
    body, metadata = message_content(kind, body, metadata, latitude, longitude, attachment_ids)
    if attachment_ids:
        metadata["attachments"] = await attachment_summaries(
            storage, principal, thread_id, attachment_ids, client_msg_id
        )
    mentions = Mentions()
    if "@" in body:
        users, orgs = find_mentions(body, *await storage.read(mention_directory(thread_id)))
        if users or orgs:
            metadata["mentions"] = mentions_metadata(users, orgs)
            mentions = Mentions(
                user_ids=tuple(u.id for u in users), org_ids=tuple(o.id for o in orgs)
            )
    return MessageDraft(
        thread_id=thread_id,
        sender_user_id=principal.user_id,
        sender_org_id=principal.org_id,
        client_msg_id=client_msg_id,
        body=body,
        kind=kind,  # type: ignore[arg-type]  (message_content allowed it)
        reply_to=reply_to,
        metadata=metadata,
        attachment_ids=tuple(attachment_ids),
        requires_ack=requires_ack or kind == "change",
        mentions=mentions,
    )


def _acknowledging(
    principal: Principal, thread_id: UUID, seq: int, now: datetime
) -> Op[tuple[UUID, Acknowledgement]]:
    access = yield from thread_access(principal, thread_id, "acknowledge")
    ack = yield from acknowledge(thread_id, seq, principal.org_id, principal.user_id, now)
    return access.group_id, ack


async def acknowledge_message(
    storage: Storage,
    router: MessageRouter,
    principal: Principal,
    thread_id: UUID,
    seq: int,
    entry: AuditEntry,
) -> Acknowledgement:
    """Confirm message `seq` for the caller's organization, whichever door asks: access is
    decided in the write, the audit row (`entry`, given the thread's group) is written with a
    new confirmation only, and the thread's subscribers hear of it once it is committed."""

    def audited(result: tuple[UUID, Acknowledgement]) -> list[AuditEntry]:
        group_id, ack = result
        if not ack.new:
            return []
        details = {**entry.details, "thread_id": str(thread_id), "seq": seq}
        return [msgspec.structs.replace(entry, group_id=group_id, details=details)]

    _, ack = await storage.write(
        lambda now: _acknowledging(principal, thread_id, seq, now), audit=audited
    )
    if ack.new:
        router.acknowledged(ack)
    return ack


# --- changing a message ------------------------------------------------------------------------


async def edit_message(
    storage: Storage,
    router: MessageRouter,
    principal: Principal,
    thread_id: UUID,
    seq: int,
    body: str,
    entry: AuditEntry,
) -> tuple[changes.Change, protocol.MessageEdited]:
    """Replace the text of the caller's own message, whichever door asks. Its mentions are
    resolved again (a name taken out is no longer highlighted; nobody is notified anew), its
    attachments and coordinates stay. Decided again in the write; audited without the text;
    the thread's subscribers get `message_edited` once it is committed."""
    current = await storage.read(_editable(principal, thread_id, seq))
    [message] = await storage.messages(thread_id, after_seq=seq - 1, limit=1)
    if message.kind in ("text", "change") and not body.strip():
        raise FieldInvalid("body", f"must not be empty for a {message.kind} message")
    metadata = {k: v for k, v in message.metadata.items() if k != "mentions"}
    if "@" in body:
        users, orgs = find_mentions(body, *await storage.read(mention_directory(thread_id)))
        if users or orgs:
            metadata["mentions"] = mentions_metadata(users, orgs)
    ring = await storage.sealing.ring_for(message.sender_org_id)  # the key it was sealed under
    sealed = ring.seal_message(thread_id, body)
    stored = (sealed.ciphertext, sealed.nonce, sealed.key_version)
    sealed_metadata = ring.seal_metadata(thread_id, metadata)

    def write(now: datetime) -> Op[changes.Change]:
        access = yield from thread_access(principal, thread_id, "edit")
        found = yield from changes.target(thread_id, seq)
        if not may_edit_message(principal, found.sender_user_id):
            raise Forbidden(f"message {seq} is not yours: only its sender edits a message")
        return (
            yield from changes.edit(
                thread_id,
                access.group_id,
                seq,
                principal.user_id,
                current.change_no,
                (*stored, sealed_metadata),
                now,
            )
        )

    change = await storage.write(write, audit=lambda c: [_audited(entry, c)])
    frame = protocol.MessageEdited(
        thread_id=thread_id,
        seq=seq,
        id=change.message_id,
        body=body,
        metadata=metadata,
        edited_at=change.at,
        change_no=change.change_no,
    )
    router.message_changed(thread_id, event_frame(frame), change.change_no)
    return change, frame


async def delete_message(
    storage: Storage,
    router: MessageRouter,
    principal: Principal,
    thread_id: UUID,
    seq: int,
    entry: AuditEntry,
    remove_blobs: Callable[[Sequence[str]], Awaitable[None]] | None = None,
) -> changes.Change:
    """Delete a message, whichever door asks: its sender, or an owner or admin of the group's
    organization. Decided in the write; the ciphertext is overwritten there and the
    attachments' rows go with it, their blobs right after the commit (`remove_blobs`; without
    it the attachment sweep collects them as strays). Audited once, without the content; the
    thread's subscribers get `message_deleted`."""

    def write(now: datetime) -> Op[changes.Change]:
        access = yield from thread_access(principal, thread_id, "edit")
        found = yield from changes.target(thread_id, seq)
        if not may_delete_message(principal, access, found.sender_user_id):
            raise Forbidden(
                f"message {seq} is not yours: only its sender, or an owner or admin of the"
                " group's organization, deletes it"
            )
        return (
            yield from changes.tombstone(
                thread_id, access.group_id, found, seq, principal.user_id, now
            )
        )

    change = await storage.write(write, audit=lambda c: [_audited(entry, c)] if c.new else [])
    if change.new:
        await storage.engine.scrub()
        if change.attachment_keys and remove_blobs is not None:
            await remove_blobs(change.attachment_keys)
        tell_deleted(router, change)
    return change


def tell_deleted(router: MessageRouter, change: changes.Change) -> None:
    """Tell the thread's subscribers that a message was deleted (committed): `message_deleted`,
    whoever deleted it (its sender, a moderator, the erasure of its sender)."""
    frame = protocol.MessageDeleted(
        thread_id=change.thread_id,
        seq=change.seq,
        id=change.message_id,
        deleted_at=change.at,
        by=change.by,
        change_no=change.change_no,
    )
    router.message_changed(change.thread_id, event_frame(frame), change.change_no)


def _editable(principal: Principal, thread_id: UUID, seq: int) -> Op[changes.Target]:
    yield from thread_access(principal, thread_id, "edit")
    found = yield from changes.target(thread_id, seq)
    if not may_edit_message(principal, found.sender_user_id):
        raise Forbidden(f"message {seq} is not yours: only its sender edits a message")
    changes.check_editable(found, seq)
    return found


def _audited(entry: AuditEntry, change: changes.Change) -> AuditEntry:
    details = {
        **entry.details,
        "thread_id": str(change.thread_id),
        "seq": change.seq,
        "change_no": change.change_no,
    }
    if change.by != change.sender_user_id:
        details["sender_user_id"] = str(change.sender_user_id)  # a moderator's deletion
    return msgspec.structs.replace(entry, group_id=change.group_id, details=details)


class MessageRouter(Protocol):
    async def post(
        self,
        principal: Principal,
        message: MessageDraft,
        *,
        audit: AuditSpec = (),
        timing: SendTiming | None = None,
    ) -> StoredMessage:
        """Check access, store (ack only after commit), deliver; raise HubError on refusal.
        Audit rows that name no group are given the thread's group; `timing` (when the hub
        received the send) is given the commit's moment, for the latency metrics."""
        ...

    def acknowledged(self, ack: Acknowledgement) -> None:
        """An organization confirmed a message (committed): tell the thread's subscribers."""
        ...

    async def membership_revoked(self, group_id: UUID, organization_id: UUID) -> None:
        """An organization left a group: whatever it receives live from it must stop now."""
        ...

    def to_user(self, user_id: UUID, frame: bytes) -> None:
        """An event for every socket of the user, wherever it is connected."""
        ...

    def message_changed(self, thread_id: UUID, frame: bytes, change_no: int) -> None:
        """A message of the thread was edited or deleted (committed): tell its subscribers."""
        ...

    def user_erased(self, user_id: UUID) -> None:
        """A user was erased (committed): their live sockets end and their tokens are refused."""
        ...


class DirectRouter:
    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    async def post(
        self,
        principal: Principal,
        message: MessageDraft,
        *,
        audit: AuditSpec = (),
        timing: SendTiming | None = None,
    ) -> StoredMessage:
        return await self._storage.append_message(
            message,
            audit=audit,
            authorize=decided_in_write(principal, message.thread_id, "post"),
            timing=timing,
        )

    def acknowledged(self, ack: Acknowledgement) -> None:
        """Nothing is delivered live without the realtime layer, so nobody to tell."""

    async def membership_revoked(self, group_id: UUID, organization_id: UUID) -> None:
        """Nothing is delivered live without the realtime layer, so nothing to end."""

    def to_user(self, user_id: UUID, frame: bytes) -> None:
        """No sockets without the realtime layer, so nobody to tell."""

    def message_changed(self, thread_id: UUID, frame: bytes, change_no: int) -> None:
        """Nothing is delivered live without the realtime layer, so nobody to tell."""

    def user_erased(self, user_id: UUID) -> None:
        """No sockets without the realtime layer; the REST door forgets them itself."""
