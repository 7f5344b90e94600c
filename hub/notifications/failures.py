"""What a channel raises when a delivery attempt fails."""

from __future__ import annotations


class DeliveryFailed(Exception):
    """A delivery attempt failed; `permanent` says whether retrying can help."""

    def __init__(self, reason: str, *, permanent: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent
