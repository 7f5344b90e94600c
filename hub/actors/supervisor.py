"""The supervisor: starts, finds, restarts and stops thread actors; knows every live session.

It is the hub's `MessageRouter`: a message posted over REST or over a socket goes through the
same thread actor, so both reach live subscribers the same way, in seq order.

Thread actors start on demand (`nursery.start`, so a caller only gets a ready actor), stop
themselves after `ws_thread_idle_s` without subscribers or work, and start again on the next
command. A thread actor that crashes is logged and counted; whatever was waiting on it fails
with `internal`, and each of its subscribers is told through `subscription_lost`, upon which the
session rejoins at once with `since_seq` = the last seq it queued. The rejoin starts a fresh
actor and the replay fills anything that was in flight, so a crash costs subscribers nothing but
a short delay. The server keeps running.

Every session's heartbeat and token expiry run on one timer (hub.actors.timers), driven by one
task in the supervisor's nursery rather than two tasks per socket.

Presence is merged per user here: the user's status (`update_presence`) is one value across all
of their sessions, and it is sent to every thread any of those sessions has joined.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING
from uuid import UUID

import trio

from hub.access import decided_in_write
from hub.actors.thread import (
    Command,
    Post,
    Receipt,
    Revoke,
    SetStatus,
    SetTyping,
    Subscribe,
    Subscriber,
    ThreadActor,
    Unsubscribe,
)
from hub.actors.timers import SessionTimers
from hub.auth import Principal
from hub.config import Settings
from hub.errors import NotFound, Overloaded
from hub.identities import Identities
from hub.ratelimit import Budget, RateLimiter
from hub.storage import Storage
from hub.storage.actor import AuditSpec, Authorize
from hub.storage.bulk import PresenceUpdate
from hub.storage.identities import get_user
from hub.storage.records import Message, MessageDraft, StoredMessage
from hub.storage.threads import get_thread, thread_ids_of_group

if TYPE_CHECKING:
    from hub.actors.session import Session

log = logging.getLogger(__name__)

IDENTITY_TTL_S = 600.0
COMMAND_TIMEOUT_S = 2.0


class StorageThreadStore:
    """The thread actor's view of storage."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    async def last_seq(self, thread_id: UUID) -> int:
        return (await self._storage.read(get_thread(thread_id))).last_seq

    async def append(
        self, message: MessageDraft, audit: AuditSpec, authorize: Authorize | None = None
    ) -> StoredMessage:
        return await self._storage.append_message(message, audit=audit, authorize=authorize)

    async def messages_after(self, thread_id: UUID, after_seq: int, limit: int) -> list[Message]:
        return await self._storage.messages(thread_id, after_seq=after_seq, limit=limit)

    async def user_name(self, user_id: UUID) -> str:
        try:
            return (await self._storage.read(get_user(user_id))).display_name
        except NotFound:
            return "unknown user"

    async def save_presence(self, thread_id: UUID, statuses: dict[UUID, str]) -> None:
        await self._storage.write_bulk("presence", PresenceUpdate(thread_id, dict(statuses)))


@dataclass(slots=True)
class HubStats:
    """Counters tests and operators read to see what the realtime layer did."""

    connections: int = 0
    thread_actors: int = 0
    actor_starts: int = 0
    actor_crashes: int = 0
    slow_consumers_cut: int = 0
    heartbeat_timeouts: int = 0
    abuse_closes: int = 0


class Supervisor:
    def __init__(self, settings: Settings, storage: Storage) -> None:
        self.settings = settings
        self.storage = storage
        self.store = StorageThreadStore(storage)
        self.identities = Identities(storage, ttl_s=IDENTITY_TTL_S)
        self.stats = HubStats()
        self.limiter = RateLimiter(Budget(settings.ws_message_rate, settings.ws_message_burst))
        self._actors: dict[UUID, ThreadActor] = {}
        self._starting: dict[UUID, trio.Event] = {}
        self._sessions: dict[str, Session] = {}
        self.timers: SessionTimers[Session] = SessionTimers(
            settings.ws_heartbeat_s, settings.ws_heartbeat_timeout_s
        )
        self._by_user: dict[UUID, set[str]] = {}
        self._user_status: dict[UUID, str] = {}
        self._nursery: trio.Nursery | None = None

    async def run(self, *, task_status: trio.TaskStatus[Supervisor] = trio.TASK_STATUS_IGNORED):
        """Own the thread actors and the session timers until cancelled (at shutdown, after
        sessions closed)."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            await nursery.start(self.timers.run)
            task_status.started(self)
            await trio.sleep_forever()

    # --- thread actors ---------------------------------------------------------------------------

    async def actor(self, thread_id: UUID) -> ThreadActor:
        """The running actor of a thread, started if needed (NotFound if there is no thread)."""
        while True:
            actor = self._actors.get(thread_id)
            if actor is not None:
                return actor
            starting = self._starting.get(thread_id)
            if starting is not None:
                await starting.wait()
                continue
            starting = self._starting[thread_id] = trio.Event()
            try:
                assert self._nursery is not None, "the supervisor is not running"
                actor = ThreadActor(
                    thread_id,
                    self.store,
                    idle_s=self.settings.ws_thread_idle_s,
                    hold_limit=self.settings.ws_outgoing_queue * 16,
                    on_idle=self._actor_idle,
                )
                await self._nursery.start(self._run_actor, actor)
                self._actors[thread_id] = actor
                self.stats.actor_starts += 1
                self.stats.thread_actors = len(self._actors)
                return actor
            finally:
                del self._starting[thread_id]
                starting.set()

    def running_actor(self, thread_id: UUID) -> ThreadActor | None:
        return self._actors.get(thread_id)

    async def _run_actor(
        self, actor: ThreadActor, *, task_status: trio.TaskStatus[ThreadActor]
    ) -> None:
        try:
            await actor.run(task_status=task_status)
        except Exception:
            if not actor.started:
                raise  # a failed start is the caller's error (nursery.start re-raises it)
            # The one place a thread actor's unexpected failure is caught: log, report, recover.
            log.exception("thread actor %s crashed; its subscribers rejoin", actor.thread_id)
            self.stats.actor_crashes += 1
            if self._actors.get(actor.thread_id) is actor:
                del self._actors[actor.thread_id]
            self.stats.thread_actors = len(self._actors)
            for subscriber in actor.abandon():
                subscriber.subscription_lost(actor.thread_id, None)

    def _actor_idle(self, actor: ThreadActor) -> bool:
        current = self._actors.get(actor.thread_id)
        if current is actor:
            del self._actors[actor.thread_id]
            self.stats.thread_actors = len(self._actors)
        return current is actor or current is None

    async def send_to_thread(self, thread_id: UUID, command: Command) -> None:
        """Hand a command to the thread's actor, starting it if needed. A full inbox is waited
        on for a short while, then refused as `overloaded`."""
        for _ in range(3):
            actor = await self.actor(thread_id)
            with trio.move_on_after(COMMAND_TIMEOUT_S):
                try:
                    await actor.inbox.send(command)
                    return
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    continue  # it stopped (idle) just now; the next lookup starts a new one
            raise Overloaded("the thread is too busy; retry")
        raise Overloaded("the thread is restarting; retry")

    def notify_thread(self, thread_id: UUID, command: Command) -> None:
        """An ephemeral command (typing, presence, receipts) for a running actor; dropped, not
        waited on, when the actor is not running (nobody to tell) or its inbox is full."""
        actor = self._actors.get(thread_id)
        if actor is None:
            return
        try:
            actor.inbox.send_nowait(command)
        except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    # --- MessageRouter ---------------------------------------------------------------------------

    async def post(
        self, principal: Principal, message: MessageDraft, *, audit: AuditSpec = ()
    ) -> StoredMessage:
        """Check access, store (answer only after commit), deliver to live subscribers. The
        access decision is taken in the write transaction itself (`decided_in_write`)."""
        authorize = decided_in_write(principal, message.thread_id, "post")
        return await self._post(Post(message, principal.name, audit, authorize=authorize))

    async def post_authorized(
        self, principal: Principal, message: MessageDraft, *, audit: AuditSpec = ()
    ) -> StoredMessage:
        """For a session that has decided its access to the thread already (and forgets the
        decision when the membership is revoked)."""
        return await self._post(Post(message, principal.name, audit))

    async def _post(self, post: Post) -> StoredMessage:
        await self.send_to_thread(post.message.thread_id, post)
        return await post.reply.wait(self.settings.storage_timeout_s + COMMAND_TIMEOUT_S)

    async def membership_revoked(self, group_id: UUID, organization_id: UUID) -> None:
        """An organization was removed from a group: end its live subscriptions to the group's
        threads and forget positive access decisions its sessions remembered, so the next send
        or join is checked again (and refused)."""
        thread_ids = await self.storage.read(thread_ids_of_group(group_id))
        for session in list(self._sessions.values()):
            if session.principal.org_id == organization_id:
                session.forget_access(thread_ids)
        for thread_id in thread_ids:
            actor = self._actors.get(thread_id)
            if actor is None:
                continue  # not running: nobody is subscribed
            with trio.move_on_after(COMMAND_TIMEOUT_S):
                try:
                    await actor.inbox.send(Revoke(organization_id))
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass  # it stopped: no subscriptions left to end

    # --- sessions and presence -------------------------------------------------------------------

    @property
    def connections(self) -> int:
        return len(self._sessions)

    def admit(self, session: Session) -> None:
        """Register a session, or raise Overloaded if its user is at the connection limit."""
        user_id = session.principal.user_id
        sessions = self._by_user.setdefault(user_id, set())
        if len(sessions) >= self.settings.ws_max_connections_per_user:
            if not sessions:
                del self._by_user[user_id]
            raise Overloaded(f"this user already has {len(sessions)} connections, the most allowed")
        sessions.add(session.session_id)
        self._sessions[session.session_id] = session
        self.stats.connections = len(self._sessions)

    def release(self, session: Session) -> None:
        self._sessions.pop(session.session_id, None)
        user_id = session.principal.user_id
        sessions = self._by_user.get(user_id)
        if sessions is not None:
            sessions.discard(session.session_id)
            if not sessions:
                del self._by_user[user_id]
                self._user_status.pop(user_id, None)
        self.stats.connections = len(self._sessions)

    def sessions(self) -> list[Session]:
        return list(self._sessions.values())

    def user_status(self, user_id: UUID) -> str:
        return self._user_status.get(user_id, "online")

    def set_user_status(self, user_id: UUID, status: str) -> None:
        """One status per user; every thread any of the user's sessions joined hears it."""
        self._user_status[user_id] = status
        threads: set[UUID] = set()
        for session_id in self._by_user.get(user_id, ()):
            threads.update(self._sessions[session_id].subscribed_threads)
        for thread_id in threads:
            self.notify_thread(thread_id, SetStatus(user_id, status))

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
        status = self.user_status(subscriber.principal.user_id)
        command = Subscribe(subscriber, status, since_seq, recovered, ref, silent)
        await self.send_to_thread(thread_id, command)

    async def leave(self, session_id: str, thread_id: UUID, ref: str | None = None) -> bool:
        """Unsubscribe; False if no running actor took the command (nothing to leave)."""
        actor = self._actors.get(thread_id)
        if actor is None:
            return False
        with trio.move_on_after(COMMAND_TIMEOUT_S):
            try:
                await actor.inbox.send(Unsubscribe(session_id, ref))
                return True
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
        return False

    def typing(self, principal: Principal, thread_id: UUID, is_typing: bool) -> None:
        self.notify_thread(thread_id, SetTyping(principal, is_typing))

    def receipt(self, thread_id: UUID, user_id: UUID, seq: int, session_id: str) -> None:
        self.notify_thread(thread_id, Receipt(user_id, seq, session_id))

    async def ensure_identity(self, principal: Principal) -> None:
        """Users and organizations must exist before their messages (foreign keys)."""
        await self.identities.ensure(principal)
