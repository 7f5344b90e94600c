"""Sealing messages for the database and opening them again, with the data keys.

A message's body and metadata are stored sealed (`hub.crypto`: AES-256-GCM bound to the thread);
the rest of the hub sees only drafts going in and `Message` records coming out. `Sealing` owns
the key ring (loaded at startup, reloaded when a row names a key version another process has
rotated to) and the memory of recently opened messages that makes a thread's latest page cheap
to serve again (docs/storage.md, "Reads"; docs/performance.md, decision register: "Recently
opened messages").
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol, TypeVar
from uuid import UUID

from hub.crypto import KeyRing, MasterKey, Sealed
from hub.errors import StorageUnavailable
from hub.storage import keys
from hub.storage.records import Message, MessageDraft, SealedMessage
from hub.storage.sql import Op

T = TypeVar("T")


class KeyRows(Protocol):
    """Where the data keys' rows are read and written (`hub.storage.handle.Storage`)."""

    async def read(self, op: Op[T]) -> T: ...

    async def write(self, make_op: Callable[[datetime], Op[T]]) -> T: ...


class OpenedMessages:
    """Messages decrypted recently, by row id, nonce, the columns an edit or delete sets, and
    the sender's name.

    Clients read the latest page of a thread over and over (every open, every reconnect), and
    opening a row (AES-GCM, then building the message) was the largest share of the hub's own
    CPU in a GET /threads/{id} of 50 messages. A row's body changes only by being sealed anew,
    with a fresh nonce, and its other columns only with edited_at or deleted_at, so a key that
    names all three never gives back a stale message; the sender's name comes from their
    profile, which a new token's name changes, so it is part of the key too (a renamed sender's
    messages are opened once more). Bounded, least recently used first out.
    Plaintext kept here lives only in this process's memory, as it does while it is served.
    """

    def __init__(self, max_entries: int = 20_000) -> None:
        self._entries: OrderedDict[tuple[Any, ...], Message] = OrderedDict()
        self._max_entries = max_entries

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: tuple[Any, ...]) -> Message | None:
        message = self._entries.get(key)
        if message is not None:
            self._entries.move_to_end(key)
        return message

    def clear(self) -> None:
        self._entries.clear()

    def put(self, key: tuple[Any, ...], message: Message) -> None:
        self._entries[key] = message
        if len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)


class Sealing:
    """Seals drafts and opens stored message rows; owns the key ring and `OpenedMessages`.

    `keyring` is the one the storage read at startup (None on a database without keys yet: then
    `load_keys` makes the first)."""

    def __init__(
        self,
        master: MasterKey,
        rows: KeyRows,
        keyring: KeyRing | None = None,
        *,
        opened: OpenedMessages | None = None,
    ) -> None:
        self._master = master
        self._rows = rows
        self._keyring = keyring
        self._opened = opened if opened is not None else OpenedMessages()

    @property
    def keyring(self) -> KeyRing:
        keyring = self._keyring
        assert keyring is not None, "the data keys are loaded when the storage opens"
        return keyring

    async def ring_for(self, organization_id: UUID) -> KeyRing:
        """The ring sealing with the organization's own data key, made on its first need (by
        whichever process gets there first; the others read it). Forbidden for an erased
        organization: nothing new is sealed for it."""
        ring = self.keyring
        for _ in range(5):
            if ring.has_organization(organization_id):
                return ring.for_organization(organization_id)
            row = await self._rows.read(keys.active_organization_key(organization_id))
            if row is None:
                await self._rows.write(
                    lambda now: keys.create_organization_key(self._master, organization_id, now)
                )
                row = await self._rows.read(keys.active_organization_key(organization_id))
            if row is not None:  # this one alone: not every key again, for each new organization
                ring.add(
                    row.version,
                    self._master.unwrap(row.version, row.wrapped_key),
                    row.organization_id,
                )
        raise StorageUnavailable(f"could not make a data key for organization {organization_id}")

    async def learn(self, versions: set[int]) -> KeyRing:
        """Take keys another process made since (their versions named by rows read here),
        reading those rows alone; destroyed ones are only marked so."""
        ring = self.keyring
        for row in await self._rows.read(keys.keys_by_version(sorted(versions))):
            if row.destroyed_at is not None:
                ring.forget([row.version])
                continue
            active_of = row.organization_id if row.status == "active" else None
            ring.add(row.version, self._master.unwrap(row.version, row.wrapped_key), active_of)
        return ring

    def seal(self, message: MessageDraft, outward: tuple[str, ...] = ()) -> SealedMessage:
        """Seal under the sender organization's data key (KeyMissing until `ring_for` made
        it: never under another's)."""
        keyring = self.keyring.for_organization(message.sender_org_id)
        sealed = keyring.seal_message(message.thread_id, message.body)
        return SealedMessage(
            thread_id=message.thread_id,
            sender_user_id=message.sender_user_id,
            sender_org_id=message.sender_org_id,
            client_msg_id=message.client_msg_id,
            kind=message.kind,
            body_ciphertext=sealed.ciphertext,
            body_nonce=sealed.nonce,
            key_version=sealed.key_version,
            reply_to=message.reply_to,
            metadata=keyring.seal_metadata(message.thread_id, message.metadata),
            attachment_ids=message.attachment_ids,
            requires_ack=message.requires_ack,
            mentions=message.mentions,
            outward=outward,
        )

    async def open_rows(self, rows: Sequence[dict[str, Any]]) -> list[Message]:
        """Decrypt stored message rows (`hub.storage.messages.MESSAGE_SHAPE`), in their order; a
        key version this process has not seen yet (rotated by another process) is loaded on
        demand. A row whose key was destroyed (its organization erased) comes back `erased`,
        with nothing of its content. Recently opened messages are reused (`OpenedMessages`)."""
        keyring = self.keyring
        unknown = {
            v
            for v in (row["key_version"] for row in rows)
            if not keyring.has_version(v) and not keyring.is_destroyed(v)
        }
        if unknown:
            keyring = await self.learn(unknown)
        opened = self._opened
        messages = []
        for row in rows:
            nonce = bytes(row["body_nonce"])
            key = (row["id"], nonce, row["edited_at"], row["deleted_at"], row["sender_name"])
            message = opened.get(key)
            if message is None:
                if row["deleted_at"] is not None or keyring.is_destroyed(row["key_version"]):
                    # A tombstone (its ciphertext was overwritten), or what an erased
                    # organization wrote (its key destroyed): there is nothing to open.
                    body, metadata = "", {}
                else:
                    body = keyring.open_message(
                        row["thread_id"],
                        Sealed(bytes(row["body_ciphertext"]), nonce, row["key_version"]),
                    )
                    metadata = keyring.open_metadata(row["thread_id"], row["metadata"])
                # Built directly: both engines already return these columns as the right
                # Python types (msgspec.convert per row was measurable).
                message = Message(
                    id=row["id"],
                    thread_id=row["thread_id"],
                    seq=row["seq"],
                    sender_user_id=row["sender_user_id"],
                    sender_org_id=row["sender_org_id"],
                    sender_name=row["sender_name"],
                    kind=row["kind"],
                    body=body,
                    client_msg_id=row["client_msg_id"],
                    metadata=metadata,
                    created_at=row["created_at"],
                    reply_to=row["reply_to"],
                    edited_at=row["edited_at"],
                    deleted_at=row["deleted_at"],
                    requires_ack=row["requires_ack"],
                    change_no=row["change_no"],
                    deleted_by=row["deleted_by"],
                    erased=row["deleted_at"] is None and keyring.is_destroyed(row["key_version"]),
                )
                opened.put(key, message)
            messages.append(message)
        return messages

    async def forget_destroyed(self) -> dict[int, UUID]:
        """Drop from memory the keys destroyed since (an organization erased, here or by
        another process), and every opened message kept in memory; returns the versions newly
        forgotten, with their organizations."""
        destroyed = await self._rows.read(keys.destroyed_versions())
        ring = self.keyring
        new = {v: org for v, org in destroyed.items() if v not in ring.destroyed}
        if new:
            ring.forget(list(new))
            self._opened.clear()
        return new

    async def load_keys(self) -> KeyRing:
        """Read every data key again (making the first if there is none) and use them."""
        ring = keys.keyring_from(await self._rows.read(keys.encryption_keys()), self._master)
        if ring is None:
            await self._rows.write(lambda now: keys.create_first_key(self._master, now))
            ring = keys.keyring_from(await self._rows.read(keys.encryption_keys()), self._master)
        assert ring is not None
        self._keyring = ring
        return ring

    async def rotate_key(self) -> int:
        """Make a new active data key; older rows stay readable. Returns its version."""
        row = await self._rows.write(lambda now: keys.rotate(self._master, now))
        await self.load_keys()
        return row.version
