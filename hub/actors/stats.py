"""The realtime layer's counters: what tests and operators read to see what it did.

One instance per process, made by the supervisor and handed to the parts that count: the thread
registry (actors running, started, crashed), the session directory (connections) and the sessions
themselves (why sockets were closed).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class HubStats:
    """Counters; each is written by one part only, and read by anyone."""

    connections: int = 0  # sessions admitted now (SessionDirectory)
    thread_actors: int = 0  # thread actors running now (ThreadRegistry)
    actor_starts: int = 0
    actor_crashes: int = 0
    slow_consumers_cut: int = 0  # closed with 4009 (Session)
    heartbeat_timeouts: int = 0  # closed with 4000 (Session)
    abuse_closes: int = 0  # closed with 4008 (Session)
