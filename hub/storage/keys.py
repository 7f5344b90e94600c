"""The data keys that encrypt message bodies: their rows, loading them into a key ring at startup,
and rotating to a new one."""

from __future__ import annotations

from datetime import datetime

from hub.crypto import KeyRing, MasterKey, new_data_key
from hub.storage.records import EncryptionKey, row_to
from hub.storage.sql import Op, execute, fetch, fetchrow, fetchval


def encryption_keys() -> Op[list[EncryptionKey]]:
    rows = yield fetch("SELECT * FROM message_encryption_keys ORDER BY version")
    return [row_to(row, EncryptionKey) for row in rows]


def add_encryption_key(*, version: int, wrapped_key: bytes, now: datetime) -> Op[EncryptionKey]:
    """Make `version` the active data key and retire the previous one, atomically."""
    yield execute(
        "UPDATE message_encryption_keys SET status = 'retired', retired_at = $1 "
        "WHERE status = 'active'",
        now,
    )
    row = yield fetchrow(
        """
        INSERT INTO message_encryption_keys (version, wrapped_key, algorithm, status, created_at)
        VALUES ($1, $2, 'AES-256-GCM', 'active', $3)
        RETURNING *
        """,
        version,
        wrapped_key,
        now,
    )
    return row_to(row, EncryptionKey)


def keyring_from(rows: list[EncryptionKey], master: MasterKey) -> KeyRing | None:
    """Unwrap every stored key; a wrong master key raises WrongMasterKey here, at startup."""
    if not rows:
        return None
    keys = {row.version: master.unwrap(row.version, row.wrapped_key) for row in rows}
    active = [row.version for row in rows if row.status == "active"]
    return KeyRing(keys, active[0] if active else max(keys))


def create_first_key(master: MasterKey, now: datetime) -> Op[None]:
    """Version 1, unless another process made it first (then nothing happens)."""
    yield execute(
        """
        INSERT INTO message_encryption_keys (version, wrapped_key, algorithm, status, created_at)
        VALUES (1, $1, 'AES-256-GCM', 'active', $2)
        ON CONFLICT (version) DO NOTHING
        """,
        master.wrap(1, new_data_key()),
        now,
    )


def rotate(master: MasterKey, now: datetime) -> Op[EncryptionKey]:
    """A new active data key; the old ones are retired but kept to decrypt older rows."""
    current = yield fetchval("SELECT max(version) FROM message_encryption_keys")
    version = (current or 0) + 1
    return (
        yield from add_encryption_key(
            version=version, wrapped_key=master.wrap(version, new_data_key()), now=now
        )
    )


__all__ = ["create_first_key", "encryption_keys", "keyring_from", "rotate"]
