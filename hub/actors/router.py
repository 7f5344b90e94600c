"""The router: how a message reaches storage and live subscribers, whichever door it came
through, and how a lost membership ends what an organization receives live.

It is the realtime layer's `hub.messaging.MessageRouter`, the one REST posts through (hub.http),
and sockets post through it too (`post_authorized`), so a message posted over REST reaches
sockets exactly as one sent over a socket. It owns no state: each step belongs to another part.

Its contract:

- `post` and `post_authorized` answer only after the message is committed, with its seq. The
  message goes through its thread's actor (hub.actors.registry), which stores it and delivers it
  to live subscribers in seq order; the answer is awaited at most the storage timeout plus
  `COMMAND_TIMEOUT_S`, then refused with `Overloaded`.
- `post` decides access in the write transaction itself (`hub.access.decided_in_write`);
  `post_authorized` is for a session that has decided it already and forgets the decision when
  the membership is revoked.
- `membership_revoked` makes every session of the organization forget the access it remembered
  for the group's threads, then ends its live subscriptions to them (each gets `not_found`), so
  the next send or join is checked again and refused. It tells every other node too
  (`MembershipRevoked` on the control channel), which does the same for its own sessions
  (`revoked_elsewhere`).
"""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID

from hub import protocol
from hub.access import decided_in_write
from hub.actors.registry import COMMAND_TIMEOUT_S, ThreadRegistry
from hub.actors.sessions import SessionDirectory
from hub.actors.thread import Acknowledged, Changed, Post, Revoke
from hub.auth import Principal
from hub.broker import events as crossing
from hub.broker.contract import Broker
from hub.broker.events import MembershipRevoked
from hub.frames import event_frame
from hub.storage import Storage
from hub.storage.acknowledgements import Acknowledgement
from hub.storage.actor import AuditSpec, SendTiming
from hub.storage.records import MessageDraft, StoredMessage
from hub.storage.threads import thread_ids_of_group


class Router:
    """Posts and revocations for REST and sockets (see the module's contract)."""

    def __init__(
        self,
        storage: Storage,
        threads: ThreadRegistry,
        sessions: SessionDirectory,
        broker: Broker,
        *,
        storage_timeout_s: float,
        forget_identity: Callable[[UUID], None] = lambda _user_id: None,
    ) -> None:
        self._broker = broker
        self._forget_identity = forget_identity
        self._storage = storage
        self._threads = threads
        self._sessions = sessions
        self._answer_timeout_s = storage_timeout_s + COMMAND_TIMEOUT_S

    async def post(
        self,
        principal: Principal,
        message: MessageDraft,
        *,
        audit: AuditSpec = (),
        timing: SendTiming | None = None,
    ) -> StoredMessage:
        """Check access, store (answer only after commit), deliver to live subscribers. The
        access decision is taken in the write transaction itself (`decided_in_write`)."""
        authorize = decided_in_write(principal, message.thread_id, "post")
        post = Post(message, principal.name, audit, authorize=authorize, timing=timing)
        return await self._post(post)

    async def post_authorized(
        self,
        principal: Principal,
        message: MessageDraft,
        *,
        audit: AuditSpec = (),
        timing: SendTiming | None = None,
    ) -> StoredMessage:
        """For a session that has decided its access to the thread already (and forgets the
        decision when the membership is revoked)."""
        return await self._post(Post(message, principal.name, audit, timing=timing))

    async def _post(self, post: Post) -> StoredMessage:
        await self._threads.send(post.message.thread_id, post)
        return await post.reply.wait(self._answer_timeout_s)

    def acknowledged(self, ack: Acknowledgement) -> None:
        """An organization confirmed a message (committed): every subscriber of its thread, on
        this node and the others, gets `message_acknowledged`. Published here rather than by
        the thread's actor, which need not run on the node that took the acknowledgement."""
        frame = event_frame(
            protocol.MessageAcknowledged(
                thread_id=ack.thread_id,
                seq=ack.seq,
                org_id=ack.organization_id,
                user_id=ack.user_id,
                at=ack.acknowledged_at,
                user_name=ack.user_name,
                org_name=ack.organization_name,
            )
        )
        self._threads.notify(ack.thread_id, Acknowledged(frame))
        self._broker.publish(ack.thread_id, crossing.Acknowledged(self._broker.node_id, frame))

    def message_changed(self, thread_id: UUID, frame: bytes, change_no: int) -> None:
        """A message was edited or deleted (committed): every subscriber of its thread, on this
        node and the others, gets the frame (`message_edited`, `message_deleted`)."""
        self._threads.notify(thread_id, Changed(frame, change_no))
        event = crossing.MessageChanged(self._broker.node_id, change_no, frame)
        self._broker.publish(thread_id, event)

    def user_erased(self, user_id: UUID) -> None:
        """A user was erased: their sockets close (4001) and their identity is forgotten, so
        the next token of theirs asks the database and is refused, on this node and (told over
        the broker) every other."""
        self.erased_elsewhere(user_id)
        self._broker.publish_control(crossing.UserErased(self._broker.node_id, user_id))

    def erased_elsewhere(self, user_id: UUID) -> None:
        """What an erasure, wherever it was done, does to this node."""
        self._forget_identity(user_id)
        for session in self._sessions.of_user(user_id):
            session.close(protocol.CLOSE_UNAUTHORIZED, "this user was erased")

    def to_user(self, user_id: UUID, frame: bytes) -> None:
        """An event for every socket of the user, on this node and the others (at most once
        across nodes, like every control event: what it says is also in storage)."""
        for session in self._sessions.of_user(user_id):
            session.deliver(frame, essential=True)
        self._broker.publish_control(crossing.UserNotified(self._broker.node_id, user_id, frame))

    async def membership_revoked(self, group_id: UUID, organization_id: UUID) -> None:
        """An organization was removed from a group: end its live subscriptions to the group's
        threads and forget positive access decisions its sessions remembered, so the next send
        or join is checked again (and refused)."""
        event = MembershipRevoked(self._broker.node_id, group_id, organization_id)
        self._broker.publish_control(event)
        await self.revoked_elsewhere(group_id, organization_id)

    async def revoked_elsewhere(self, group_id: UUID, organization_id: UUID) -> None:
        """What a revocation does to this node's sessions, wherever it was decided."""
        thread_ids = await self._storage.read(thread_ids_of_group(group_id))
        for session in self._sessions.of_organization(organization_id):
            session.forget_access(thread_ids)
        for thread_id in thread_ids:
            # Not running: nobody is subscribed. Not taken in time: the actor is stuck, and
            # the sessions' forgotten decisions still refuse their next request.
            await self._threads.send_if_running(thread_id, Revoke(organization_id))
