"""The one failure a channel reports: what went wrong, and whether trying again can help.

The dispatcher retries a transient failure later and dead-letters a permanent one, so every
channel sorts its errors into these two; `reason` is shown to operators in the dead-letter
listing and logged, so it is short, printable and never holds a secret or a whole response.
"""

from __future__ import annotations

REASON_MAX = 300
"""Longest reason kept: a status line and about 200 characters of what the other side said."""


class DeliveryFailed(Exception):
    """A delivery attempt failed; `permanent` says whether retrying can help."""

    def __init__(self, reason: str, *, permanent: bool = False) -> None:
        self.reason = printable(reason, REASON_MAX)
        self.permanent = permanent
        super().__init__(self.reason)

    def __repr__(self) -> str:
        return f"DeliveryFailed({self.reason!r}, permanent={self.permanent})"


def printable(text: str, limit: int) -> str:
    """`text` on one line of printable characters, cut to `limit` with an ellipsis: what a
    remote server said can hold anything, and a log line or a listing must not break on it."""
    cleaned = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"
