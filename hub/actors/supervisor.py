"""The supervisor: the realtime layer of one process, composed of its parts and run as one tree.

    Supervisor.run
    ├── broker           crossing nodes: Redis, or this process alone (hub.broker)
    ├── seq check        what a lost publish never brought, read from storage (hub.actors.seqcheck)
    ├── session timers   one task for every session's heartbeat and token expiry (hub.actors.timers)
    └── thread registry  the thread actors, each in its nursery (hub.actors.registry)

The parts, one module each, with their contracts there:

- `threads` (hub.actors.registry): which thread actors run; starting, restarting and
  stopping them; how a command reaches one.
- `sessions` (hub.actors.sessions): every live session by id and by user; the per-user
  connection limit.
- `presence` (hub.actors.presence): each connected user's one status across all of their
  sessions.
- `router` (hub.actors.router): the `hub.messaging.MessageRouter` REST posts through, and
  revocations.
- `limiter` (hub.ratelimit): every user's message budget, shared by all of their sockets.
- `timers` (hub.actors.timers), `identities` (hub.identities), `stats` (hub.actors.stats),
  `metrics` (hub.metrics, the hub's: what its parts count for `/metrics`).

The supervisor is also the broker's sink (hub.broker.contract.BrokerSink): what other nodes
publish goes, a line each, to the thread actors, the presence store or the router.

The supervisor itself holds no state of its own. It is what a session sees of the realtime layer
(`hub.actors.session.SessionHost`): each of those calls is a line that hands the request to the
part that owns it. The WebSocket transport (hub.ws.server) admits and releases sessions through
it, since releasing a user's last session also resets their presence.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable
from typing import Any, Protocol
from uuid import UUID

import trio

from hub import protocol
from hub.actors.presence import PresenceStore
from hub.actors.registry import StorageThreadStore, ThreadRegistry
from hub.actors.roster import Roster
from hub.actors.router import Router
from hub.actors.seqcheck import SeqCheck
from hub.actors.sessions import LiveSession, SessionDirectory
from hub.actors.stats import HubStats
from hub.actors.thread import (
    Receipt,
    Remote,
    Resync,
    SetTyping,
    Subscribe,
    Subscriber,
    ThreadPresence,
    Unsubscribe,
)
from hub.actors.timers import SessionTimers
from hub.attachments.service import Attachments
from hub.auth import Principal
from hub.broker.contract import Broker
from hub.broker.errors import BrokerUnavailable
from hub.broker.events import (
    ControlEvent,
    MembershipRevoked,
    ThreadEvent,
    UserErased,
    UserNotified,
    UserStatusSet,
)
from hub.broker.memory import MemoryBroker
from hub.config import Settings
from hub.errors import HubError, Overloaded
from hub.identities import Identities
from hub.messaging import acknowledge_message, delete_message, edit_message
from hub.metrics import Metrics
from hub.ratelimit import Budget, Decision, RateLimiter
from hub.storage import Storage
from hub.storage.acknowledgements import Acknowledgement
from hub.storage.actor import AuditSpec, SendTiming
from hub.storage.changes import Change
from hub.storage.records import AuditEntry, MessageDraft, StoredMessage

IDENTITY_TTL_S = 600.0


class ClusterLimits(Protocol):
    """The cluster's per-user limits as the supervisor uses them (hub.broker.limits)."""

    async def admit_connection(self, user_id: UUID, session_id: str, limit: int) -> bool: ...

    async def release_connection(self, user_id: UUID, session_id: str) -> None: ...

    async def refresh_connections(self, sessions: Iterable[tuple[UUID, str]]) -> None: ...

    async def take_message(self, user_id: UUID, budget: Budget) -> Decision: ...


REVOCATIONS_QUEUE = 1024

log = logging.getLogger(__name__)


class Supervisor:
    """The realtime layer of one process (see the module docstring for its parts)."""

    def __init__(
        self,
        settings: Settings,
        storage: Storage,
        metrics: Metrics | None = None,
        broker: Broker | None = None,
    ) -> None:
        self.settings = settings
        self.storage = storage
        # The attachments service, once the HTTP side made it (hub.app): a deleted message's
        # blobs go right after the commit; without it the sweep collects them as strays.
        self.attachments: Attachments | None = None
        # The REST app's memory of identities (hub.app sets it): an erasure empties both.
        self.rest_identities: Identities | None = None
        self.stats = HubStats()
        self.metrics = metrics if metrics is not None else Metrics(settings.node_id)
        self.broker: Broker = (
            broker if broker is not None else MemoryBroker(settings.node_id, metrics=self.metrics)
        )
        # The cluster's stores; None for a hub that is one process (this node decides alone).
        presence: ThreadPresence | None = self.broker.presence
        self.cluster_limits: ClusterLimits | None = self.broker.limits
        self.identities = Identities(storage, ttl_s=IDENTITY_TTL_S)
        self.limiter = RateLimiter(Budget(settings.ws_message_rate, settings.ws_message_burst))
        self.timers: SessionTimers[Any] = SessionTimers(
            settings.ws_heartbeat_s, settings.ws_heartbeat_timeout_s
        )
        self.threads = ThreadRegistry(
            StorageThreadStore(storage),
            settings,
            self.stats,
            self.metrics,
            broker=self.broker,
            presence=presence,
        )
        self.sessions = SessionDirectory(settings.ws_max_connections_per_user, self.stats)
        self.presence = PresenceStore(self.sessions, self.threads, self.broker)
        self.router = Router(
            storage,
            self.threads,
            self.sessions,
            self.broker,
            storage_timeout_s=settings.storage_timeout_s,
            forget_identity=self._forget_identity,
        )
        self._revocations, self._revocations_inbox = trio.open_memory_channel[tuple[UUID, UUID]](
            REVOCATIONS_QUEUE
        )
        self.roster = Roster(
            self.threads,
            self.sessions,
            self.broker,
            presence=presence,  # type: ignore[arg-type]
            limits=self.cluster_limits,
            ttl_s=settings.presence_ttl_s,
        )
        self.seq_check = SeqCheck(
            storage,
            self.threads,
            self.broker,
            self.metrics,
            interval_s=settings.seq_check_s,
            revoked=self.router.revoked_elsewhere,
        )

    async def run(self, *, task_status: trio.TaskStatus[Supervisor] = trio.TASK_STATUS_IGNORED):
        """Own the thread actors and the session timers until cancelled (at shutdown, after
        sessions closed)."""
        async with trio.open_nursery() as nursery:
            await nursery.start(self.broker.run, self)
            await nursery.start(self.seq_check.run)
            await nursery.start(self.roster.run)
            await nursery.start(self._apply_revocations)
            await nursery.start(self.timers.run)
            await nursery.start(self.threads.run)
            task_status.started(self)

    # --- for the transport -----------------------------------------------------------------------

    @property
    def connections(self) -> int:
        return len(self.sessions)

    async def admit(self, session: LiveSession) -> None:
        """Register an authenticated session, or raise Overloaded if its user is at the
        connection limit: on this node, then over all nodes (while the cluster's store cannot
        answer, this node's count is the limit)."""
        self.sessions.admit(session)
        if self.cluster_limits is None:
            return
        user_id = session.principal.user_id
        limit = self.settings.ws_max_connections_per_user
        try:
            admitted = await self.cluster_limits.admit_connection(
                user_id, session.session_id, limit
            )
        except BrokerUnavailable:
            return
        if not admitted:
            self.sessions.release(session)
            raise Overloaded(
                f"this user already has {limit} connections over all nodes, the most allowed"
            )

    def release(self, session: LiveSession) -> None:
        """Forget a session whose socket has ended."""
        self.roster.release_connection(session.principal.user_id, session.session_id)
        if self.sessions.release(session):
            self.presence.forget(session.principal.user_id)

    async def take_message_token(self, user_id: UUID) -> Decision:
        """One token of the user's message budget, shared by all their sockets on all nodes
        (on this node alone while the cluster's store cannot answer)."""
        if self.cluster_limits is not None:
            try:
                return await self.cluster_limits.take_message(user_id, self.limiter.budget)
            except BrokerUnavailable:
                pass
        return self.limiter.take(user_id)

    async def ensure_identity(self, principal: Principal) -> None:
        """Users and organizations must exist before their messages (foreign keys)."""
        await self.identities.ensure(principal)

    # --- SessionHost: what sessions ask ----------------------------------------------------------

    async def join(
        self,
        subscriber: Subscriber,
        thread_id: UUID,
        *,
        since_seq: int | None,
        recovered: bool = True,
        ref: str | None = None,
        silent: bool = False,
        since_change: int | None = None,
    ) -> None:
        status = self.presence.status(subscriber.principal.user_id)
        command = Subscribe(subscriber, status, since_seq, recovered, ref, silent, since_change)
        await self.threads.send(thread_id, command)

    async def leave(self, session_id: str, thread_id: UUID, ref: str | None = None) -> bool:
        """Unsubscribe; False if no running actor took the command (nothing to leave)."""
        return await self.threads.send_if_running(thread_id, Unsubscribe(session_id, ref))

    async def post_authorized(
        self,
        principal: Principal,
        message: MessageDraft,
        *,
        audit: AuditSpec = (),
        timing: SendTiming | None = None,
    ) -> StoredMessage:
        return await self.router.post_authorized(principal, message, audit=audit, timing=timing)

    def typing(self, principal: Principal, thread_id: UUID, is_typing: bool) -> None:
        self.threads.notify(thread_id, SetTyping(principal, is_typing))

    def receipt(self, thread_id: UUID, user_id: UUID, seq: int, session_id: str) -> None:
        self.threads.notify(thread_id, Receipt(user_id, seq, session_id))

    async def acknowledge(
        self, principal: Principal, thread_id: UUID, seq: int, entry: AuditEntry
    ) -> Acknowledgement:
        return await acknowledge_message(
            self.storage, self.router, principal, thread_id, seq, entry
        )

    async def edit(
        self, principal: Principal, thread_id: UUID, seq: int, body: str, entry: AuditEntry
    ) -> Change:
        change, _ = await edit_message(
            self.storage, self.router, principal, thread_id, seq, body, entry
        )
        return change

    async def delete(
        self, principal: Principal, thread_id: UUID, seq: int, entry: AuditEntry
    ) -> Change:
        remove = self.attachments.remove_blobs if self.attachments is not None else None
        return await delete_message(
            self.storage, self.router, principal, thread_id, seq, entry, remove
        )

    def _forget_identity(self, user_id: UUID) -> None:
        self.identities.forget(user_id)
        if self.rest_identities is not None:
            self.rest_identities.forget(user_id)

    def organization_erased(self, organization_id: UUID) -> None:
        """Its sockets close (4001) and its users are checked again: their tokens are refused
        from now on (hub.identities)."""
        self.identities.forget_organization(organization_id)
        for session in self.sessions.of_organization(organization_id):
            session.close(protocol.CLOSE_UNAUTHORIZED, "your organization was erased")

    def set_user_status(self, user_id: UUID, status: str) -> None:
        self.presence.set_status(user_id, status)

    # --- BrokerSink: what other nodes publish ---------------------------------------------------

    def thread_event(self, thread_id: UUID, event: ThreadEvent) -> None:
        self.threads.notify(thread_id, Remote(event))

    def resubscribed(self, thread_ids: Collection[UUID]) -> None:
        for thread_id in thread_ids:
            self.threads.notify(thread_id, Resync())

    def notify_user(self, user_id: UUID, frame: bytes) -> None:
        """A frame for every socket of the user, on this node and the others (`notification`,
        `notifications_read`)."""
        self.router.to_user(user_id, frame)

    def _deliver_to_user(self, user_id: UUID, frame: bytes) -> None:
        for session in self.sessions.of_user(user_id):
            session.deliver(frame, essential=True)

    def control_event(self, event: ControlEvent) -> None:
        match event:
            case UserNotified(user_id=user_id, frame=frame):
                self._deliver_to_user(user_id, frame)
            case UserStatusSet(user_id=user_id, status=status):
                self.presence.status_set_elsewhere(user_id, status)
            case UserErased(user_id=user_id):
                self.router.erased_elsewhere(user_id)
            case MembershipRevoked(group_id=group_id, organization_id=organization_id):
                try:
                    self._revocations.send_nowait((group_id, organization_id))
                except trio.WouldBlock:
                    log.error(
                        "revocation of %s in %s from another node dropped",
                        organization_id,
                        group_id,
                    )

    async def _apply_revocations(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Revocations decided on other nodes, applied here in order (each reads the group's
        threads from storage, so the broker's reader cannot do it itself)."""
        task_status.started()
        async for group_id, organization_id in self._revocations_inbox:
            try:
                await self.router.revoked_elsewhere(group_id, organization_id)
            except HubError as exc:
                log.error(
                    "revocation of %s in %s not applied here: %s", organization_id, group_id, exc
                )
