"""Encryption at rest: AES-256-GCM envelope encryption with versioned data keys.

The master key (HUB_ENCRYPTION_KEY) never touches a message: it only wraps the data keys stored in
`message_encryption_keys`. Each organization seals what it writes under data keys of its own
(`KeyRing.for_organization`), so destroying them erases everything it wrote, wherever a copy of
the ciphertext is (docs/privacy.md). Rotating makes new data keys; old ones stay to decrypt old
rows, so a rotation never rewrites history. Every ciphertext carries associated data that binds
it to its thread, so a row copied elsewhere fails to decrypt instead of leaking. A message's body
and its metadata are sealed, each with a nonce of its own; which other columns stay in
plaintext, and why, is written in docs/storage.md.
"""

from __future__ import annotations

import base64
import binascii
import functools
import os
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hub.errors import HubError, WrongMasterKey

ALGORITHM = "AES-256-GCM"
NONCE_SIZE = 12
# The one key of a stored metadata object that holds the sealed original (KeyRing.seal_metadata).
SEALED_METADATA = "$sealed"
_encode_json = msgspec.json.Encoder().encode


class DecryptionFailed(HubError):
    """A ciphertext did not authenticate: tampered, moved to another thread, or a lost key."""

    code = "internal"


@dataclass(frozen=True, slots=True)
class Sealed:
    ciphertext: bytes
    nonce: bytes
    key_version: int


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


class MasterKey:
    """Wraps and unwraps data keys; a wrong master key is caught at unwrap, at startup."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("the master key must be 32 bytes")
        self._aead = AESGCM(key)

    def wrap(self, version: int, data_key: bytes) -> bytes:
        nonce = os.urandom(NONCE_SIZE)
        return nonce + self._aead.encrypt(nonce, data_key, _wrap_aad(version))

    def unwrap(self, version: int, wrapped: bytes) -> bytes:
        try:
            return self._aead.decrypt(
                wrapped[:NONCE_SIZE], wrapped[NONCE_SIZE:], _wrap_aad(version)
            )
        except InvalidTag:
            raise WrongMasterKey(
                "HUB_ENCRYPTION_KEY does not match the key that protects this database's "
                f"data keys (data key version {version} failed to unwrap)"
            ) from None


class KeyDestroyed(DecryptionFailed):
    """The ciphertext's key was destroyed (its organization was erased): it is unreadable for
    good, by design."""


class KeyMissing(HubError):
    """An organization has no data key in this ring yet (`Sealing.ring_for` makes one)."""

    code = "internal"


class KeyRing:
    """The unwrapped data keys of one database: encrypt with the active one, decrypt with any.

    `organizations` maps an organization to its active version; `for_organization` is the view
    that seals with it. `destroyed` are versions whose key is gone (an erased organization's):
    what they sealed no longer opens, and says so (`is_destroyed`)."""

    def __init__(
        self,
        keys: dict[int, bytes],
        active_version: int,
        *,
        organizations: dict[UUID, int] | None = None,
        destroyed: set[int] | frozenset[int] = frozenset(),
    ) -> None:
        if active_version not in keys:
            raise ValueError(f"active key version {active_version} is not in the ring")
        self._aeads = {version: AESGCM(key) for version, key in keys.items()}
        self.active_version = active_version
        self.organizations = dict(organizations or {})
        self.destroyed = set(destroyed)

    def for_organization(self, organization_id: UUID) -> KeyRing:
        """The same keys, sealing with the organization's active one (KeyMissing without)."""
        version = self.organizations.get(organization_id)
        if version is None or version not in self._aeads:
            raise KeyMissing(f"organization {organization_id} has no data key here yet")
        view = KeyRing.__new__(KeyRing)
        view._aeads = self._aeads
        view.active_version = version
        view.organizations = self.organizations
        view.destroyed = self.destroyed
        return view

    def has_organization(self, organization_id: UUID) -> bool:
        version = self.organizations.get(organization_id)
        return version is not None and version in self._aeads

    def is_destroyed(self, version: int) -> bool:
        return version in self.destroyed

    def add(self, version: int, key: bytes, organization_id: UUID | None = None) -> None:
        """Take a key another process made (an organization's first, a rotation): read, not
        re-read with every other (shared with every view of this ring)."""
        self._aeads[version] = AESGCM(key)
        if organization_id is not None:
            current = self.organizations.get(organization_id)
            if current is None or current < version:
                self.organizations[organization_id] = version

    def forget(self, versions: set[int] | list[int]) -> None:
        """Drop destroyed keys from memory (shared with every view of this ring)."""
        for version in versions:
            self._aeads.pop(version, None)
            self.destroyed.add(version)
        for organization_id, version in list(self.organizations.items()):
            if version in self.destroyed:
                del self.organizations[organization_id]

    @property
    def versions(self) -> list[int]:
        return sorted(self._aeads)

    def has_version(self, version: int) -> bool:
        return version in self._aeads

    def aead(self, version: int) -> AESGCM:
        """The cipher of one data key, for formats that frame their own ciphertexts (attachment
        chunks, `hub.attachments.chunks`); DecryptionFailed for a version not in the ring."""
        aead = self._aeads.get(version)
        if aead is None:
            raise self._missing(version)
        return aead

    def seal_message(self, thread_id: UUID, body: str) -> Sealed:
        return self._seal(_message_aad(thread_id), body.encode())

    def open_message(self, thread_id: UUID, sealed: Sealed) -> str:
        return self._open(_message_aad(thread_id), sealed).decode()

    def seal_metadata(self, thread_id: UUID, metadata: dict[str, Any]) -> dict[str, Any]:
        """A message's metadata as stored: sealed like its body (a location's coordinates are as
        private as the words beside them) inside a one-key JSON envelope, with a nonce of its
        own. Empty metadata stays `{}`: nothing to hide, and most messages pay nothing."""
        if not metadata:
            return {}
        sealed = self._seal(_metadata_aad(thread_id), _encode_json(metadata))
        return {
            SEALED_METADATA: {
                "v": sealed.key_version,
                "n": base64.b64encode(sealed.nonce).decode(),
                "c": base64.b64encode(sealed.ciphertext).decode(),
            }
        }

    def open_metadata(self, thread_id: UUID, stored: dict[str, Any]) -> dict[str, Any]:
        """The metadata `seal_metadata` stored; rows written before metadata was sealed hold
        it as it came, and are returned as they are."""
        envelope = stored.get(SEALED_METADATA)
        if envelope is None:
            return stored
        try:
            sealed = Sealed(
                base64.b64decode(envelope["c"]), base64.b64decode(envelope["n"]), envelope["v"]
            )
        except (KeyError, TypeError, ValueError, binascii.Error):
            raise DecryptionFailed("sealed metadata is malformed") from None
        return msgspec.json.decode(self._open(_metadata_aad(thread_id), sealed))

    def seal_text(self, aad: bytes, text: str) -> str:
        """Short text sealed into one string, `version.base64(nonce + ciphertext)`, bound to
        `aad` (what it belongs to): attachment names, webhook secrets."""
        sealed = self._seal(aad, text.encode())
        return f"{sealed.key_version}.{base64.b64encode(sealed.nonce + sealed.ciphertext).decode()}"

    def open_text(self, aad: bytes, stored: str) -> str:
        """What `seal_text` sealed; DecryptionFailed when it does not open (another `aad`, a
        key not in the ring, a damaged string)."""
        version, _, encoded = stored.partition(".")
        try:
            raw = base64.b64decode(encoded, validate=True)
            sealed = Sealed(raw[NONCE_SIZE:], raw[:NONCE_SIZE], int(version))
        except (ValueError, binascii.Error):
            raise DecryptionFailed("sealed text is malformed") from None
        return self._open(aad, sealed).decode()

    def _seal(self, aad: bytes, plaintext: bytes) -> Sealed:
        nonce = os.urandom(NONCE_SIZE)
        ciphertext = self._aeads[self.active_version].encrypt(nonce, plaintext, aad)
        return Sealed(ciphertext, nonce, self.active_version)

    def _open(self, aad: bytes, sealed: Sealed) -> bytes:
        aead = self._aeads.get(sealed.key_version)
        if aead is None:
            raise self._missing(sealed.key_version)
        try:
            return aead.decrypt(sealed.nonce, sealed.ciphertext, aad)
        except InvalidTag:
            raise DecryptionFailed("ciphertext failed authentication") from None

    def _missing(self, version: int) -> DecryptionFailed:
        if version in self.destroyed:
            return KeyDestroyed(f"data key {version} was destroyed: its organization was erased")
        return DecryptionFailed(f"no data key with version {version}")


def _wrap_aad(version: int) -> bytes:
    return b"vch:data-key:" + str(version).encode()


@functools.lru_cache(maxsize=4096)
def _message_aad(thread_id: UUID) -> bytes:
    """Remembered: a page of history opens many messages of one thread."""
    return b"vch:message:" + thread_id.bytes


@functools.lru_cache(maxsize=4096)
def _metadata_aad(thread_id: UUID) -> bytes:
    return b"vch:metadata:" + thread_id.bytes
