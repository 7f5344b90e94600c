"""The roster: this node's standing in the cluster's presence and limits stores (hub.broker).

Every registration a node makes there (a user in a thread, a session counted against its user's
connection limit) expires after `HUB_PRESENCE_TTL_S` unless the node refreshes it, so a node
killed with -9 stops counting within the TTL. The roster is the one task that keeps this node's
registrations alive, and that clears what dead nodes left:

- every third of the TTL it refreshes the registrations of every running thread actor and every
  admitted session; a registration the store had lost (a restarted Redis) is made again, and a
  user that makes present again is announced to the other nodes;
- every half TTL it sweeps the threads that run here: a user whose every registration expired
  is gone, announced once (the store reports each to one sweeping node) to every node and to
  this node's own actor;
- it releases the connections of ended sessions, so a socket's last moments never wait on Redis
  (a release lost in a full queue or a Redis outage expires with the TTL).

With no cluster stores (a hub that is one process) it has nothing to do and does not run.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Protocol
from uuid import UUID

import trio

from hub import protocol
from hub.actors.registry import ThreadRegistry
from hub.actors.sessions import SessionDirectory
from hub.actors.thread import Remote, ThreadBroker, decode_entry
from hub.broker import events as crossing
from hub.broker.errors import BrokerUnavailable
from hub.frames import event_frame

log = logging.getLogger(__name__)

RELEASE_QUEUE = 10_000


class RosterPresence(Protocol):
    """What the roster needs of the presence store (hub.broker.presence.ClusterPresence)."""

    async def refresh(
        self, registrations: Iterable[tuple[UUID, UUID, bytes]]
    ) -> list[tuple[UUID, UUID]]: ...

    async def sweep(self, thread_ids: Iterable[UUID]) -> dict[UUID, list[UUID]]: ...


class RosterLimits(Protocol):
    """What the roster needs of the limits store (hub.broker.limits.ClusterLimits)."""

    async def release_connection(self, user_id: UUID, session_id: str) -> None: ...

    async def refresh_connections(self, sessions: Iterable[tuple[UUID, str]]) -> None: ...


class Roster:
    """Refreshes, sweeps and releases this node's registrations (see the module docstring)."""

    def __init__(
        self,
        threads: ThreadRegistry,
        sessions: SessionDirectory,
        broker: ThreadBroker,
        *,
        presence: RosterPresence | None,
        limits: RosterLimits | None,
        ttl_s: float,
    ) -> None:
        self._threads = threads
        self._sessions = sessions
        self._broker = broker
        self._presence = presence
        self._limits = limits
        self._ttl_s = ttl_s
        self._release, self._releases = trio.open_memory_channel[tuple[UUID, str]](RELEASE_QUEUE)

    def release_connection(self, user_id: UUID, session_id: str) -> None:
        """Uncount an ended session, soon; never waits."""
        if self._limits is None:
            return
        try:
            self._release.send_nowait((user_id, session_id))
        except trio.WouldBlock:
            pass  # it expires with the TTL, as a dead node's do

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            if self._presence is not None or self._limits is not None:
                nursery.start_soon(self._refresh_loop)
            if self._presence is not None:
                nursery.start_soon(self._sweep_loop)
            if self._limits is not None:
                nursery.start_soon(self._release_loop)
            task_status.started()

    async def _refresh_loop(self) -> None:
        while True:
            await trio.sleep(self._ttl_s / 3)
            try:
                await self.refresh_once()
            except BrokerUnavailable as exc:
                log.debug("roster: refresh skipped: %s", exc)

    async def refresh_once(self) -> None:
        if self._presence is not None:
            registrations = [
                (actor.thread_id, user_id, entry)
                for actor in self._threads.all_running()
                for user_id, entry in actor.registrations()
            ]
            if registrations:
                entries = {(t, u): e for t, u, e in registrations}
                for thread_id, user_id in await self._presence.refresh(registrations):
                    # The store had lost them and no other node has them: present again.
                    entry = decode_entry(entries[(thread_id, user_id)])
                    frame = event_frame(protocol.UserJoined(thread_id=thread_id, user=entry))
                    event = crossing.UserJoined(
                        self._broker.node_id, user_id, entries[(thread_id, user_id)], frame
                    )
                    self._broker.publish(thread_id, event)
        if self._limits is not None:
            sessions = [(s.principal.user_id, s.session_id) for s in self._sessions.all()]
            if sessions:
                await self._limits.refresh_connections(sessions)

    async def _sweep_loop(self) -> None:
        while True:
            await trio.sleep(self._ttl_s / 2)
            try:
                await self.sweep_once()
            except BrokerUnavailable as exc:
                log.debug("roster: sweep skipped: %s", exc)

    async def sweep_once(self) -> None:
        assert self._presence is not None
        thread_ids = [actor.thread_id for actor in self._threads.all_running()]
        if not thread_ids:
            return
        for thread_id, users in (await self._presence.sweep(thread_ids)).items():
            for user_id in users:
                frame = event_frame(protocol.UserLeft(thread_id=thread_id, user_id=user_id))
                event = crossing.UserLeft(self._broker.node_id, user_id, frame)
                self._broker.publish(thread_id, event)
                self._threads.notify(thread_id, Remote(event))

    async def _release_loop(self) -> None:
        assert self._limits is not None
        async for user_id, session_id in self._releases:
            try:
                await self._limits.release_connection(user_id, session_id)
            except BrokerUnavailable:
                pass  # it expires with the TTL
