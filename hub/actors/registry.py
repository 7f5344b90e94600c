"""The thread registry: which thread actors run in this process, and how a command reaches one.

Owns the map from thread id to its running `ThreadActor` (hub.actors.thread) and the nursery
they run in. The router (posts, revocations), the supervisor on behalf of sessions (joins,
leaves, typing, receipts) and the presence store (status changes) reach thread actors only
through it.

Its contract:

- At most one actor per thread. `actor` returns a started one (`nursery.start`), starting it on
  demand; concurrent callers for the same thread wait for the same start.
- An actor stops itself after `ws_thread_idle_s` with no subscribers and no work. It is
  unregistered and its inbox closed in one step, so no command is sent to an actor that will not
  read it; the next command starts a new one.
- A crash is logged and counted; the actor is unregistered, whatever waited on it fails with
  `internal`, and each of its subscribers is told through `subscription_lost`, upon which the
  session rejoins at once with `since_seq` = the last seq it queued. The fresh actor's replay
  fills anything that was in flight, so a crash costs subscribers a short delay, nothing else,
  and the server keeps running.
- `send` waits for room in an inbox at most `COMMAND_TIMEOUT_S`, then refuses with `Overloaded`;
  `notify` (ephemeral commands) never waits and drops what finds no running actor or no room.
"""

from __future__ import annotations

import logging
from uuid import UUID

import trio

from hub.actors.stats import HubStats
from hub.actors.thread import Command, ThreadActor, ThreadBroker, ThreadPresence, ThreadStore
from hub.config import Settings
from hub.errors import NotFound, Overloaded
from hub.metrics import Metrics
from hub.storage import Storage
from hub.storage.actor import AuditSpec, Authorize, SendTiming
from hub.storage.bulk import PresenceUpdate
from hub.storage.identities import get_user
from hub.storage.messages import changed_rows
from hub.storage.records import Message, MessageDraft, StoredMessage
from hub.storage.threads import get_thread

log = logging.getLogger(__name__)

COMMAND_TIMEOUT_S = 2.0


class StorageThreadStore:
    """The thread actor's view of storage (`ThreadStore`), over the hub's `Storage`."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    async def last_seq(self, thread_id: UUID) -> int:
        return (await self._storage.read(get_thread(thread_id))).last_seq

    async def append(
        self,
        message: MessageDraft,
        audit: AuditSpec,
        authorize: Authorize | None = None,
        timing: SendTiming | None = None,
    ) -> StoredMessage:
        return await self._storage.append_message(
            message, audit=audit, authorize=authorize, timing=timing
        )

    async def messages_after(self, thread_id: UUID, after_seq: int, limit: int) -> list[Message]:
        return await self._storage.messages(thread_id, after_seq=after_seq, limit=limit)

    async def last_change(self, thread_id: UUID) -> int:
        return (await self._storage.read(get_thread(thread_id))).last_change

    async def changed_since(
        self, thread_id: UUID, since_change: int, upto_seq: int, limit: int
    ) -> list[Message]:
        rows = await self._storage.read(changed_rows(thread_id, since_change, upto_seq, limit))
        return await self._storage.sealing.open_rows(rows)

    async def user_name(self, user_id: UUID) -> str:
        try:
            return (await self._storage.read(get_user(user_id))).display_name
        except NotFound:
            return "unknown user"

    async def save_presence(self, thread_id: UUID, statuses: dict[UUID, str]) -> None:
        await self._storage.write_bulk("presence", PresenceUpdate(thread_id, dict(statuses)))


class ThreadRegistry:
    """The running thread actors of this process, one per thread at most (see the module's
    contract). `run` owns their nursery."""

    def __init__(
        self,
        store: ThreadStore,
        settings: Settings,
        stats: HubStats,
        metrics: Metrics,
        *,
        broker: ThreadBroker | None = None,
        presence: ThreadPresence | None = None,
    ) -> None:
        self._store = store
        self._broker = broker
        self._presence = presence
        self._metrics = metrics
        self._idle_s = settings.ws_thread_idle_s
        self._hold_limit = settings.ws_outgoing_queue * 16
        self._stats = stats
        self._actors: dict[UUID, ThreadActor] = {}
        self._starting: dict[UUID, trio.Event] = {}
        self._nursery: trio.Nursery | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the thread actors until cancelled (at shutdown, after the sessions closed)."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await trio.sleep_forever()

    def fullest_inbox(self) -> int:
        """The most commands waiting in any running actor's inbox now (for a scrape: it looks
        at every actor)."""
        return max(
            (actor.inbox.statistics().current_buffer_used for actor in self._actors.values()),
            default=0,
        )

    def running(self, thread_id: UUID) -> ThreadActor | None:
        """The thread's actor if one runs now; never starts one."""
        return self._actors.get(thread_id)

    def live(self) -> list[ThreadActor]:
        """The running actors that have subscribers now (for the seq check and presence
        refreshes: a scan of every actor, done every few seconds)."""
        return [actor for actor in self._actors.values() if actor.stats.subscribers]

    def all_running(self) -> list[ThreadActor]:
        return list(self._actors.values())

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
                assert self._nursery is not None, "the thread registry is not running"
                actor = ThreadActor(
                    thread_id,
                    self._store,
                    idle_s=self._idle_s,
                    hold_limit=self._hold_limit,
                    on_idle=self._actor_idle,
                    metrics=self._metrics,
                    broker=self._broker,
                    presence=self._presence,
                )
                await self._nursery.start(self._run_actor, actor)
                self._actors[thread_id] = actor
                self._stats.actor_starts += 1
                self._stats.thread_actors = len(self._actors)
                return actor
            finally:
                del self._starting[thread_id]
                starting.set()

    async def send(self, thread_id: UUID, command: Command) -> None:
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

    async def send_if_running(self, thread_id: UUID, command: Command) -> bool:
        """Hand a command to the thread's actor only if one runs (an actor that is not running
        has no subscriber to end); False if no actor took it within `COMMAND_TIMEOUT_S`."""
        actor = self._actors.get(thread_id)
        if actor is None:
            return False
        with trio.move_on_after(COMMAND_TIMEOUT_S):
            try:
                await actor.inbox.send(command)
                return True
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass  # it stopped: nothing left to end
        return False

    def notify(self, thread_id: UUID, command: Command) -> None:
        """An ephemeral command (typing, presence, receipts) for a running actor; dropped, not
        waited on, when the actor is not running (nobody to tell) or its inbox is full."""
        actor = self._actors.get(thread_id)
        if actor is None:
            return
        try:
            actor.inbox.send_nowait(command)
        except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
            pass

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
            self._stats.actor_crashes += 1
            if self._actors.get(actor.thread_id) is actor:
                del self._actors[actor.thread_id]
            self._stats.thread_actors = len(self._actors)
            for subscriber in actor.abandon():
                subscriber.subscription_lost(actor.thread_id, None)

    def _actor_idle(self, actor: ThreadActor) -> bool:
        current = self._actors.get(actor.thread_id)
        if current is actor:
            del self._actors[actor.thread_id]
            self._stats.thread_actors = len(self._actors)
        return current is actor or current is None
