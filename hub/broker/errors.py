"""The one failure the broker reports: Redis cannot be reached (or answer) now."""

from __future__ import annotations


class BrokerUnavailable(Exception):
    """The cross-node broker could not do what was asked, now. Callers fall back to what this
    node alone knows (local presence and limits, fan-out by polling PostgreSQL); nothing stored
    depends on the broker, so nothing acknowledged is lost when it is down."""
