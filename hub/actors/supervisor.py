"""The supervisor: the realtime layer of one process, composed of its parts and run as one tree.

    Supervisor.run
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

The supervisor itself holds no state of its own. It is what a session sees of the realtime layer
(`hub.actors.session.SessionHost`): each of those calls is a line that hands the request to the
part that owns it. The WebSocket transport (hub.ws.server) admits and releases sessions through
it, since releasing a user's last session also resets their presence.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import trio

from hub.actors.presence import PresenceStore
from hub.actors.registry import StorageThreadStore, ThreadRegistry
from hub.actors.router import Router
from hub.actors.sessions import LiveSession, SessionDirectory
from hub.actors.stats import HubStats
from hub.actors.thread import Receipt, SetTyping, Subscribe, Subscriber, Unsubscribe
from hub.actors.timers import SessionTimers
from hub.auth import Principal
from hub.config import Settings
from hub.identities import Identities
from hub.metrics import Metrics
from hub.ratelimit import Budget, RateLimiter
from hub.storage import Storage
from hub.storage.actor import AuditSpec, SendTiming
from hub.storage.records import MessageDraft, StoredMessage

IDENTITY_TTL_S = 600.0


class Supervisor:
    """The realtime layer of one process (see the module docstring for its parts)."""

    def __init__(
        self, settings: Settings, storage: Storage, metrics: Metrics | None = None
    ) -> None:
        self.settings = settings
        self.storage = storage
        self.stats = HubStats()
        self.metrics = metrics if metrics is not None else Metrics(settings.node_id)
        self.identities = Identities(storage, ttl_s=IDENTITY_TTL_S)
        self.limiter = RateLimiter(Budget(settings.ws_message_rate, settings.ws_message_burst))
        self.timers: SessionTimers[Any] = SessionTimers(
            settings.ws_heartbeat_s, settings.ws_heartbeat_timeout_s
        )
        self.threads = ThreadRegistry(
            StorageThreadStore(storage), settings, self.stats, self.metrics
        )
        self.sessions = SessionDirectory(settings.ws_max_connections_per_user, self.stats)
        self.presence = PresenceStore(self.sessions, self.threads)
        self.router = Router(
            storage, self.threads, self.sessions, storage_timeout_s=settings.storage_timeout_s
        )

    async def run(self, *, task_status: trio.TaskStatus[Supervisor] = trio.TASK_STATUS_IGNORED):
        """Own the thread actors and the session timers until cancelled (at shutdown, after
        sessions closed)."""
        async with trio.open_nursery() as nursery:
            await nursery.start(self.timers.run)
            await nursery.start(self.threads.run)
            task_status.started(self)

    # --- for the transport -----------------------------------------------------------------------

    @property
    def connections(self) -> int:
        return len(self.sessions)

    def admit(self, session: LiveSession) -> None:
        """Register an authenticated session, or raise Overloaded if its user is at the
        connection limit."""
        self.sessions.admit(session)

    def release(self, session: LiveSession) -> None:
        """Forget a session whose socket has ended."""
        if self.sessions.release(session):
            self.presence.forget(session.principal.user_id)

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
    ) -> None:
        status = self.presence.status(subscriber.principal.user_id)
        command = Subscribe(subscriber, status, since_seq, recovered, ref, silent)
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

    def set_user_status(self, user_id: UUID, status: str) -> None:
        self.presence.set_status(user_id, status)
