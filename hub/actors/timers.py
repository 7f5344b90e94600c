"""One task keeps every session's heartbeat and token-expiry timers.

Why one task: with a heartbeat task and an expiry task per session, 10,000 idle sockets were
20,000 sleeping tasks, each with its own Trio deadline and cancel scope, and the profile of an
idle hub was mostly Trio expiring those deadlines (docs/performance.md, decision register:
"Heartbeats from one timer task"). Here a session is an
entry in each of two heaps, and a single task sleeps until the earliest of them. Heartbeat
deadlines are rounded up to `resolution_s` (at most 1 s), so sessions falling due within the
same tick are handled in one wakeup.

The timer task never awaits a socket, so one slow peer cannot delay anybody else's timers: it
only calls a session's non-blocking methods. A ping goes to the head of the session's outgoing
queue and the session's own writer puts it on the wire. trio-websocket's reader task notes the
pong when it arrives (hub.ws.internals.Pings). Whether the pong came in time is checked only when
the timeout falls due.

Heartbeat, per session. A check falls due `interval` after the peer was last heard from (any
frame, pongs included). If a frame has arrived in the meantime, that traffic proves the peer is
alive: no ping, and the check moves to `interval` after that frame. Otherwise the session is
pinged and checked again after `timeout`; if nothing has arrived by then, it closes with 4000.
So, as with a heartbeat task per session, a silent peer is closed `interval + timeout` after it
was last heard from, and an idle one is pinged `interval` after each pong (or `timeout`, if that
is longer). A busy peer is not pinged at all.

Token expiry is Unix time. It is converted to Trio's clock once, when it is set (at `add`, and
at each `auth` refresh through `set_expiry`), so that it can sit in the heap as one deadline.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

import trio

from hub import protocol
from hub.deadlines import Deadlines

log = logging.getLogger(__name__)

MAX_RESOLUTION_S = 1.0


class Timed(Protocol):
    """What the timers need from a session (hub.actors.session.Session)."""

    @property
    def last_heard(self) -> float:
        """Trio time of the last frame or pong from the peer."""
        ...

    def ping(self) -> None: ...

    def heartbeat_timed_out(self) -> None: ...

    def token_expired(self) -> None: ...

    def close(self, code: int, reason: str) -> None: ...


S = TypeVar("S", bound=Timed)


class SessionTimers(Generic[S]):
    """The heartbeat and token-expiry timers of every live session, run by one task
    (`run`, in the supervisor's nursery)."""

    def __init__(self, interval_s: float, timeout_s: float) -> None:
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.resolution_s = min(MAX_RESOLUTION_S, interval_s / 10, timeout_s / 10)
        self._pinged_at: dict[S, float | None] = {}  # every session; when its open ping went out
        self._heartbeats: Deadlines[S] = Deadlines()
        self._expiries: Deadlines[S] = Deadlines()
        self._sleep = trio.CancelScope()

    def __len__(self) -> int:
        """Sessions with timers (for leak checks: 0 once every socket has closed)."""
        return len(self._pinged_at)

    def add(self, session: S, expires_at: float) -> None:
        """Start timing a session that was just heard from (its handshake); `expires_at` is
        its token's expiry, Unix time."""
        self._pinged_at[session] = None
        self._schedule(self._heartbeats, session, self._round(session.last_heard + self.interval_s))
        self.set_expiry(session, expires_at)

    def set_expiry(self, session: S, expires_at: float) -> None:
        """The session's token now expires at `expires_at` (Unix time)."""
        if session in self._pinged_at:
            deadline = trio.current_time() + (expires_at - time.time())
            self._schedule(self._expiries, session, deadline)

    def remove(self, session: S) -> None:
        """Forget a session that has ended."""
        self._pinged_at.pop(session, None)
        self._heartbeats.discard(session)
        self._expiries.discard(session)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve the timers until cancelled."""
        task_status.started()
        while True:
            deadline = min(self._heartbeats.earliest(), self._expiries.earliest())
            with trio.CancelScope(deadline=deadline) as self._sleep:
                await trio.sleep_forever()
            now = trio.current_time()
            for session in self._expiries.pop_due(now):
                self._guarded(session, session.token_expired)
            for session in self._heartbeats.pop_due(now):
                self._guarded(session, self._beat, session, now)

    def _beat(self, session: S, now: float) -> None:
        pinged_at = self._pinged_at[session]
        heard = session.last_heard
        if pinged_at is not None and heard < pinged_at:
            session.heartbeat_timed_out()  # no more heartbeats: the session is closing
            return
        next_check = self._round(heard + self.interval_s)
        if next_check > now:
            self._pinged_at[session] = None
            self._heartbeats.set(session, next_check)
        else:
            self._pinged_at[session] = now
            self._heartbeats.set(session, self._round(now + self.timeout_s))
            session.ping()

    def _guarded(self, session: S, callback: Callable[..., None], *args: object) -> None:
        """A bug in one session's callback must not stop the timers of all the others: that
        session is logged, forgotten and closed with 1011."""
        try:
            callback(*args)
        except Exception:
            log.exception("session timer failed for %r; closing it", session)
            self.remove(session)
            try:
                session.close(protocol.CLOSE_INTERNAL, "internal error")
            except Exception:
                log.exception("closing %r failed", session)

    def _schedule(self, deadlines: Deadlines[S], session: S, deadline: float) -> None:
        deadlines.set(session, deadline)
        if deadline < self._sleep.deadline:
            self._sleep.deadline = deadline  # wake the timer task earlier

    def _round(self, t: float) -> float:
        """`t` rounded up to the timer's resolution: never early, and shared by neighbours."""
        rounded = math.ceil(t / self.resolution_s) * self.resolution_s
        return rounded if rounded >= t else rounded + self.resolution_s
