"""How Python values map to SQLite columns, keyed on the declared column types of the schema.

Rows read from SQLite then carry the same Python types as asyncpg's (UUID, datetime, date, dict,
bool), so the storage operations convert rows the same way for both engines."""

from __future__ import annotations

import functools
import json
import sqlite3
from datetime import UTC, date, datetime
from uuid import UUID


def timestamp(value: datetime) -> str:
    """One fixed format in UTC, so timestamps compare correctly as text."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


@functools.lru_cache(maxsize=8192)
def _uuid(raw: bytes) -> UUID:
    """UUIDs repeat from row to row (a page of history names one thread and a few senders) and
    UUID() parses in Python: remembering the recent ones cut a 50-message page's read by about
    a third. UUID objects are immutable, so sharing them is safe."""
    return UUID(raw.decode())


def register() -> None:
    sqlite3.register_adapter(UUID, str)
    sqlite3.register_adapter(datetime, timestamp)
    sqlite3.register_adapter(date, date.isoformat)
    sqlite3.register_adapter(dict, json.dumps)
    sqlite3.register_adapter(list, json.dumps)
    sqlite3.register_converter("UUID", _uuid)
    sqlite3.register_converter("TIMESTAMPTZ", lambda raw: datetime.fromisoformat(raw.decode()))
    sqlite3.register_converter("DATE", lambda raw: date.fromisoformat(raw.decode()))
    sqlite3.register_converter("JSONB", json.loads)
    sqlite3.register_converter("BOOLEAN", lambda raw: raw not in (b"0", b""))


register()
