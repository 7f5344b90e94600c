"""The data keys that encrypt message bodies: their rows, loading them into a key ring at startup,
each organization's own (made on its first write), rotating to new ones, and destroying an
erased organization's."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from hub.crypto import KeyRing, MasterKey, new_data_key
from hub.errors import Forbidden
from hub.storage.records import EncryptionKey, row_to
from hub.storage.sql import Op, execute, fetch, fetchrow, fetchval


def encryption_keys() -> Op[list[EncryptionKey]]:
    rows = yield fetch("SELECT * FROM message_encryption_keys ORDER BY version")
    return [row_to(row, EncryptionKey) for row in rows]


def add_encryption_key(*, version: int, wrapped_key: bytes, now: datetime) -> Op[EncryptionKey]:
    """Make `version` the active data key and retire the previous one, atomically."""
    yield execute(
        "UPDATE message_encryption_keys SET status = 'retired', retired_at = $1 "
        "WHERE status = 'active' AND organization_id IS NULL",
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
    """Unwrap every stored key but the destroyed ones; a wrong master key raises
    WrongMasterKey here, at startup."""
    live = [row for row in rows if row.destroyed_at is None]
    hub_wide = [row for row in live if row.organization_id is None]
    if not hub_wide:
        return None
    keys = {row.version: master.unwrap(row.version, row.wrapped_key) for row in live}
    active = [row.version for row in hub_wide if row.status == "active"]
    organizations = {
        row.organization_id: row.version
        for row in live
        if row.organization_id is not None and row.status == "active"
    }
    return KeyRing(
        keys,
        active[0] if active else max(row.version for row in hub_wide),
        organizations=organizations,
        destroyed={row.version for row in rows if row.destroyed_at is not None},
    )


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
    """New active data keys, the hub-wide one and every organization's; the old ones are
    retired but kept to decrypt older rows. Returns the hub-wide one."""
    current = yield fetchval("SELECT max(version) FROM message_encryption_keys")
    version = (current or 0) + 1
    hub_key = yield from add_encryption_key(
        version=version, wrapped_key=master.wrap(version, new_data_key()), now=now
    )
    organizations = yield fetch(
        "SELECT organization_id FROM message_encryption_keys "
        "WHERE status = 'active' AND organization_id IS NOT NULL ORDER BY organization_id"
    )
    for row in organizations:
        version += 1
        yield execute(
            "UPDATE message_encryption_keys SET status = 'retired', retired_at = $1 "
            "WHERE status = 'active' AND organization_id = $2",
            now,
            row["organization_id"],
        )
        yield from _insert_organization_key(master, row["organization_id"], version, now)
    return hub_key


def create_organization_key(master: MasterKey, organization_id: UUID, now: datetime) -> Op[None]:
    """The organization's first data key, unless it has one (another process made it first) or
    was erased (its keys are destroyed and stay so: nothing new is sealed for it)."""
    erased = yield fetchval(
        "SELECT 1 FROM message_encryption_keys WHERE organization_id = $1 "
        "AND destroyed_at IS NOT NULL",
        organization_id,
    )
    if erased is not None:
        raise Forbidden(f"organization {organization_id} was erased")
    current = yield fetchval("SELECT max(version) FROM message_encryption_keys")
    yield from _insert_organization_key(master, organization_id, (current or 0) + 1, now)


def _insert_organization_key(
    master: MasterKey, organization_id: UUID, version: int, now: datetime
) -> Op[None]:
    # DO NOTHING on either unique rule (this version, or an active key the organization has
    # already): the caller reads the keys again and finds the one that won.
    yield execute(
        "INSERT INTO message_encryption_keys "
        "(version, wrapped_key, algorithm, status, created_at, organization_id) "
        "VALUES ($1, $2, 'AES-256-GCM', 'active', $3, $4) ON CONFLICT DO NOTHING",
        version,
        master.wrap(version, new_data_key()),
        now,
        organization_id,
    )


def keys_by_version(versions: list[int]) -> Op[list[EncryptionKey]]:
    """These keys' rows (a process learning keys another made, without reading them all)."""
    found = []
    for version in versions:
        row = yield fetchrow("SELECT * FROM message_encryption_keys WHERE version = $1", version)
        if row is not None:
            found.append(row_to(row, EncryptionKey))
    return found


def active_organization_key(organization_id: UUID) -> Op[EncryptionKey | None]:
    row = yield fetchrow(
        "SELECT * FROM message_encryption_keys WHERE organization_id = $1 AND status = 'active'",
        organization_id,
    )
    return None if row is None else row_to(row, EncryptionKey)


def destroy_organization_keys(organization_id: UUID, now: datetime) -> Op[list[int]]:
    """Overwrite every data key of the organization (the rows stay: ciphertexts name their
    key's version); returns the versions destroyed. Irreversible by design."""
    rows = yield fetch(
        "UPDATE message_encryption_keys SET wrapped_key = $2, status = 'retired', "
        "retired_at = coalesce(retired_at, $3), destroyed_at = $3 "
        "WHERE organization_id = $1 AND destroyed_at IS NULL RETURNING version",
        organization_id,
        b"",
        now,
    )
    return sorted(row["version"] for row in rows)


def destroyed_versions() -> Op[dict[int, UUID]]:
    """Every destroyed key's version, with the organization it was of."""
    rows = yield fetch(
        "SELECT version, organization_id FROM message_encryption_keys "
        "WHERE destroyed_at IS NOT NULL"
    )
    return {row["version"]: row["organization_id"] for row in rows}


__all__ = [
    "create_first_key",
    "create_organization_key",
    "destroy_organization_keys",
    "destroyed_versions",
    "encryption_keys",
    "keyring_from",
    "rotate",
]
