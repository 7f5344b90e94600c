"""The session directory: every live session of this process, by id and by user.

Owns which sessions are admitted and which belong to each user. The WebSocket transport admits a
session once its socket is authenticated and releases it when the socket ends, and asks for all
of them at shutdown; the presence store asks for a user's sessions, the router for an
organization's.

Its contract: a user never holds more than `ws_max_connections_per_user` admitted sessions
(`admit` raises `Overloaded` and registers nothing); `release` is idempotent and says when the
user's last session went; `stats.connections` is always the number admitted. It keeps only
references: what a session is doing is the session's own state.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol
from uuid import UUID

from hub.actors.stats import HubStats
from hub.auth import Principal
from hub.errors import Overloaded


class LiveSession(Protocol):
    """What the directory, the presence store and the router need of a session
    (hub.actors.session.Session). Its principal may change on an `auth` refresh, its user never."""

    session_id: str
    principal: Principal

    @property
    def subscribed_threads(self) -> list[UUID]:
        """The threads this socket has joined."""
        ...

    def forget_access(self, thread_ids: Sequence[UUID]) -> None:
        """Drop remembered access decisions for these threads: the next request asks again."""
        ...

    def close(self, code: int, reason: str) -> None:
        """Ask the session to close its socket with `code` (it never blocks)."""
        ...

    def deliver(self, frame: bytes, *, essential: bool) -> None:
        """Queue an encoded event for the socket (it never blocks)."""
        ...


class SessionDirectory:
    """Every live session, by id and by user (see the module's contract)."""

    def __init__(self, per_user_limit: int, stats: HubStats) -> None:
        self._per_user_limit = per_user_limit
        self._stats = stats
        self._sessions: dict[str, LiveSession] = {}
        self._by_user: dict[UUID, set[str]] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def admit(self, session: LiveSession) -> None:
        """Register a session, or raise Overloaded if its user is at the connection limit."""
        user_id = session.principal.user_id
        sessions = self._by_user.setdefault(user_id, set())
        if len(sessions) >= self._per_user_limit:
            if not sessions:
                del self._by_user[user_id]
            raise Overloaded(f"this user already has {len(sessions)} connections, the most allowed")
        sessions.add(session.session_id)
        self._sessions[session.session_id] = session
        self._stats.connections = len(self._sessions)

    def release(self, session: LiveSession) -> bool:
        """Forget a session that has ended; True if it was its user's last."""
        self._sessions.pop(session.session_id, None)
        user_id = session.principal.user_id
        sessions = self._by_user.get(user_id)
        last = False
        if sessions is not None:
            sessions.discard(session.session_id)
            if not sessions:
                del self._by_user[user_id]
                last = True
        self._stats.connections = len(self._sessions)
        return last

    def all(self) -> list[LiveSession]:
        return list(self._sessions.values())

    def of_user(self, user_id: UUID) -> list[LiveSession]:
        return [self._sessions[session_id] for session_id in self._by_user.get(user_id, ())]

    def of_organization(self, organization_id: UUID) -> list[LiveSession]:
        """The sessions acting for the organization now (after any token refresh)."""
        return [s for s in self._sessions.values() if s.principal.org_id == organization_id]
