"""Path ids and opaque cursors: the small parsing every route family shares.

A cursor is the sort key of the last item of a page, tagged with the listing it belongs to and
base64url-encoded. Clients must treat it as opaque; the server re-checks access on every page,
so a tampered cursor can at worst skip rows the caller could see anyway.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from hub.errors import FieldInvalid
from hub.validation import BIGINT_MAX

_CURSOR_VERSION = 1


def path_id(name: str, value: str) -> UUID:
    """A UUID from a path segment; anything else is a 422 naming the segment."""
    try:
        return UUID(value)
    except ValueError:
        raise FieldInvalid(name, "must be a UUID", location="path") from None


def path_seq(name: str, value: str) -> int:
    """A message's seq from a path segment (1 and up); anything else is a 422 naming it."""
    if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= BIGINT_MAX:
        raise FieldInvalid(name, f"must be an integer from 1 to {BIGINT_MAX}", location="path")
    return int(value)


def encode_cursor(listing: str, key: list[Any]) -> str:
    raw = msgspec.json.encode([_CURSOR_VERSION, listing, *key])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(listing: str, cursor: str, types: tuple[type, ...]) -> tuple[Any, ...]:
    """The sort key inside a cursor, each part converted to its type (int, UUID, datetime)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        version, kind, *key = msgspec.json.decode(raw)
        if version != _CURSOR_VERSION or kind != listing or len(key) != len(types):
            raise ValueError("not a cursor of this listing")
        return tuple(_convert(part, kind_) for part, kind_ in zip(key, types, strict=True))
    except (binascii.Error, msgspec.DecodeError, ValueError, TypeError):
        raise FieldInvalid(
            "cursor", "is not a cursor this listing returned", location="query"
        ) from None


def _convert(value: Any, kind: type) -> Any:
    if kind is datetime:
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            raise ValueError("naive timestamp")
        return parsed
    if kind is UUID:
        return UUID(value)
    if kind is int and isinstance(value, int) and not isinstance(value, bool):
        if not -BIGINT_MAX - 1 <= value <= BIGINT_MAX:
            raise ValueError("integer out of range")
        return value
    raise ValueError(f"expected {kind.__name__}")
