"""The cluster's stores as the realtime layer holds them: one object for the node's lifetime,
whatever the broker's connection does underneath.

The Redis stores are bound to a connected client, made anew at each reconnect; the in-memory
ones are there but play an outage when their bus is down. A `Gate` forwards every call to the
store of the moment, or fails it with `BrokerUnavailable` when there is none, which is what
every caller already handles (it falls back to what this node alone knows).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hub.broker.errors import BrokerUnavailable


class Gate:
    """Forwards to `current()`, or raises BrokerUnavailable when it is None."""

    def __init__(self, current: Callable[[], Any], what: str) -> None:
        self._current = current
        self._what = what

    def __getattr__(self, name: str) -> Any:
        target = self._current()
        if target is None:

            async def unavailable(*args: Any, **kwargs: Any) -> Any:
                raise BrokerUnavailable(f"the {self._what} store is unreachable")

            return unavailable
        return getattr(target, name)
