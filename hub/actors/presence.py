"""The presence store: each connected user's one status, across all of their sessions.

Owns the status of every user with at least one live session (a user it does not know is
`online`). Sessions set it (`update_presence`); the supervisor reads it when a session joins a
thread, so the thread announces the user with it, and forgets it when the user's last session
ends, so a user who comes back is `online` again.

Its contract: a change reaches every thread any of the user's sessions has joined, through each
thread's running actor, and is ephemeral there as typing is: not waited on, dropped for an actor
that is not running or whose inbox is full. Saving presence per thread, and telling the
subscribers, is the thread actors' work (hub.actors.thread). Across nodes, a change is published
to every node (`UserStatusSet`), and each node with sessions of the user does the same for the
threads those sessions joined (`status_set_elsewhere`); a thread's actors on nodes without the
user hear it from the thread's own channel.
"""

from __future__ import annotations

from uuid import UUID

from hub.actors.registry import ThreadRegistry
from hub.actors.sessions import SessionDirectory
from hub.actors.thread import SetStatus
from hub.broker.contract import Broker
from hub.broker.events import UserStatusSet

DEFAULT_STATUS = "online"


class PresenceStore:
    """Each connected user's one status (see the module's contract)."""

    def __init__(self, sessions: SessionDirectory, threads: ThreadRegistry, broker: Broker) -> None:
        self._sessions = sessions
        self._threads = threads
        self._broker = broker
        self._status: dict[UUID, str] = {}

    def status(self, user_id: UUID) -> str:
        return self._status.get(user_id, DEFAULT_STATUS)

    def set_status(self, user_id: UUID, status: str) -> None:
        """One status per user; every thread any of the user's sessions joined hears it."""
        self._apply(user_id, status)
        self._broker.publish_control(UserStatusSet(self._broker.node_id, user_id, status))

    def status_set_elsewhere(self, user_id: UUID, status: str) -> None:
        """The user set their status on another node: the same, for their sessions here."""
        if self._sessions.of_user(user_id):
            self._apply(user_id, status)

    def _apply(self, user_id: UUID, status: str) -> None:
        self._status[user_id] = status
        threads: set[UUID] = set()
        for session in self._sessions.of_user(user_id):
            threads.update(session.subscribed_threads)
        for thread_id in threads:
            self._threads.notify(thread_id, SetStatus(user_id, status))

    def forget(self, user_id: UUID) -> None:
        """The user's last session ended."""
        self._status.pop(user_id, None)
