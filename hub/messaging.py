"""Posting a message, whichever door it comes through.

REST and WebSocket both post through a `MessageRouter`. Without the realtime layer it is
`DirectRouter`: check access, store, answer. The realtime supervisor implements the same protocol
and also fans the committed message out to the thread's live subscribers, so a message posted over
REST reaches sockets exactly like one sent over a socket.
"""

from __future__ import annotations

from typing import Protocol
from uuid import UUID

from hub.access import decided_in_write
from hub.auth import Principal
from hub.storage import Storage
from hub.storage.actor import AuditSpec, SendTiming
from hub.storage.records import MessageDraft, StoredMessage


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

    async def membership_revoked(self, group_id: UUID, organization_id: UUID) -> None:
        """An organization left a group: whatever it receives live from it must stop now."""
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

    async def membership_revoked(self, group_id: UUID, organization_id: UUID) -> None:
        """Nothing is delivered live without the realtime layer, so nothing to end."""
