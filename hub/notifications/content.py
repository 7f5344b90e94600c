"""What a notification shows of its message, the same in the inbox, the frame and the e-mail."""

from __future__ import annotations

PREVIEW_MAX = 200


def preview(body: str) -> str:
    """The message's text on one line, cut at `PREVIEW_MAX` characters."""
    text = " ".join(body.split())
    return text if len(text) <= PREVIEW_MAX else text[: PREVIEW_MAX - 1] + "…"
