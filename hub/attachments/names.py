"""An attachment's display name, sealed in its row like a message body: "Smith wedding - home
address.pdf" says as much as the message beside it.

The name is only ever shown, never used as a path: `clean_name` keeps the last segment of what
a browser sends (some send `C:\\fakepath\\…`) and refuses control characters.
"""

from __future__ import annotations

import unicodedata
from uuid import UUID

from hub.crypto import DecryptionFailed, KeyRing
from hub.errors import FieldInvalid

NAME_MAX = 255


def clean_name(raw: str | None) -> str:
    """The name to keep, or FieldInvalid (in the query) naming what is wrong with it."""
    name = (raw or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
    if not name or name in (".", ".."):
        raise FieldInvalid("filename", "is required (the name, for display)", location="query")
    if len(name) > NAME_MAX:
        raise FieldInvalid("filename", f"must be at most {NAME_MAX} characters", location="query")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in name):
        raise FieldInvalid(
            "filename", "must not contain control or invisible format characters", location="query"
        )
    return unicodedata.normalize("NFC", name)


def _aad(attachment_id: UUID) -> bytes:
    return b"vch:attachment-name:" + attachment_id.bytes


def seal_name(ring: KeyRing, attachment_id: UUID, name: str) -> str:
    return ring.seal_text(_aad(attachment_id), name)


def open_name(ring: KeyRing, attachment_id: UUID, stored: str) -> str:
    try:
        return ring.open_text(_aad(attachment_id), stored)
    except DecryptionFailed:
        raise DecryptionFailed(f"the name of attachment {attachment_id} does not open") from None
