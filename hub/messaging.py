"""Posting a message, whichever door it comes through.

REST and WebSocket both post through a `MessageRouter`. Without the realtime layer it is
`DirectRouter`: check access, store, answer. The realtime supervisor implements the same protocol
and also fans the committed message out to the thread's live subscribers, so a message posted over
REST reaches sockets exactly like one sent over a socket.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

import msgspec

from hub.access import decided_in_write, thread_access
from hub.attachments.service import attachment_summaries
from hub.auth import Principal
from hub.notifications.mentions import find_mentions, mentions_metadata
from hub.storage import Storage
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
