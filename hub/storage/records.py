"""Typed rows: what the storage operations return and accept, the same for both engines."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal, TypeVar
from uuid import UUID

import msgspec

Role = Literal["owner", "admin", "manager", "vendor"]
ConnectionStatus = Literal["invited", "active", "declined", "removed"]
GroupStatus = Literal["active", "archived"]
ThreadType = Literal["general", "timeline", "logistics", "emergency"]
Priority = Literal["urgent", "high", "normal", "low"]
ThreadStatus = Literal["open", "resolved", "archived"]
MessageKind = Literal["text", "location", "system", "attachment", "change"]
PresenceStatus = Literal["online", "away", "busy", "offline"]

PRIORITY_RANK: dict[str, int] = {"urgent": 0, "high": 1, "normal": 2, "low": 3}


class Organization(msgspec.Struct, frozen=True):
    id: UUID
    name: str
    vendor_type: str
    created_at: datetime
    updated_at: datetime


class UserProfile(msgspec.Struct, frozen=True):
    id: UUID
    organization_id: UUID
    username: str
    display_name: str
    role: Role
    created_at: datetime
    updated_at: datetime
    last_seen_at: datetime | None = None
    email: str | None = None
    erased_at: datetime | None = None
    erased_by: UUID | None = None


class Client(msgspec.Struct, frozen=True):
    id: UUID
    organization_id: UUID
    partner_one_name: str
    created_at: datetime
    updated_at: datetime
    partner_two_name: str | None = None
    email: str | None = None
    phone: str | None = None
    wedding_date: date | None = None
    venue_name: str | None = None
    venue_address: str | None = None


class Group(msgspec.Struct, frozen=True):
    id: UUID
    owner_organization_id: UUID
    name: str
    status: GroupStatus
    settings: dict[str, Any]
    created_by: UUID
    created_at: datetime
    updated_at: datetime
    client_id: UUID | None = None
    description: str | None = None
    wedding_date: date | None = None
    archived_at: datetime | None = None


class Connection(msgspec.Struct, frozen=True):
    group_id: UUID
    organization_id: UUID
    vendor_type: str
    role: Role
    status: ConnectionStatus
    invited_at: datetime
    updated_at: datetime
    invited_by: UUID | None = None
    joined_at: datetime | None = None


class Thread(msgspec.Struct, frozen=True):
    id: UUID
    group_id: UUID
    title: str
    thread_type: ThreadType
    priority: Priority
    status: ThreadStatus
    created_by: UUID
    last_seq: int
    created_at: datetime
    updated_at: datetime
    last_message_at: datetime | None = None
    archived_at: datetime | None = None
    last_change: int = 0  # the number of its messages' edits and deletions so far


class ReaderPosition(msgspec.Struct, frozen=True):
    """A reader's place in a thread: their read mark, and how many messages of others follow it."""

    last_read_seq: int
    unread_count: int


class ThreadAccessRow(msgspec.Struct, frozen=True):
    """What an access decision about a thread reads (`hub.storage.access_rows`): the thread, its
    group's state and owner, and the caller organization's membership (None without one)."""

    thread: Thread
    group_status: GroupStatus
    owner_organization_id: UUID
    member_role: Role | None
    member_status: ConnectionStatus | None


class ThreadListing(msgspec.Struct, frozen=True):
    """A thread as one reader's listing shows it, with its rank by priority (urgent is 0)."""

    thread: Thread
    reader: ReaderPosition
    priority_rank: int


class GroupListing(msgspec.Struct, frozen=True):
    """A group as one caller's listing shows it: the group with its stats and the caller's
    unread count; `last_thread_activity_at` is the latest change of any of its threads."""

    group: Group
    member_count: int
    thread_count: int
    message_count: int
    unread_count: int
    last_thread_activity_at: datetime | None


class Membership(msgspec.Struct, frozen=True):
    """A group's member organization as the group lists it: the connection and the name."""

    connection: Connection
    organization_name: str


class Invitation(msgspec.Struct, frozen=True):
    """A pending invitation as the invited organization lists it: the group it is to, who owns
    that group and who sent it (None when the inviting user is unknown), and the vendor type
    and role the invited organization would join with."""

    group_id: UUID
    group_name: str
    owner_organization_id: UUID
    owner_organization_name: str
    vendor_type: str
    role: Role
    invited_at: datetime
    wedding_date: date | None = None
    invited_by_name: str | None = None


class Mentions(msgspec.Struct, frozen=True):
    """Who a message mentions, resolved by the door (`hub.notifications.mentions`): member users
    by `@name`, member organizations by `@org`. The storage decides their notifications from
    these ids in the message's transaction; the names travel sealed in `metadata.mentions`."""

    user_ids: tuple[UUID, ...] = ()
    org_ids: tuple[UUID, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.user_ids or self.org_ids)


class MessageDraft(msgspec.Struct, frozen=True):
    """A message as a sender submits it, before it is stored; the body is plain text until the
    storage seals it. Live subscribers get it as `hub.protocol.NewMessage` once committed."""

    thread_id: UUID
    sender_user_id: UUID
    sender_org_id: UUID
    client_msg_id: str
    body: str
    kind: MessageKind = "text"
    reply_to: int | None = None
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    # Uploads the message carries (kind "attachment"), linked to it in its transaction.
    attachment_ids: tuple[UUID, ...] = ()
    # Every member organization but the sender's is asked to confirm it (always for a change).
    requires_ack: bool = False
    mentions: Mentions = Mentions()


class SealedMessage(msgspec.Struct, frozen=True):
    """A message ready for the database: the body is ciphertext bound to its thread."""

    thread_id: UUID
    sender_user_id: UUID
    sender_org_id: UUID
    client_msg_id: str
    kind: MessageKind
    body_ciphertext: bytes
    body_nonce: bytes
    key_version: int
    reply_to: int | None
    metadata: dict[str, Any]
    attachment_ids: tuple[UUID, ...] = ()
    requires_ack: bool = False
    mentions: Mentions = Mentions()
    # The channels beyond in-app this hub delivers through (`Storage.outward`).
    outward: tuple[str, ...] = ()

    @property
    def notifies(self) -> bool:
        """Whether storing it writes notifications (hub.storage.notifications)."""
        return self.requires_ack or bool(self.mentions)


class StoredMessage(msgspec.Struct, frozen=True):
    """What a sender is acknowledged with: the committed identity of its message.

    `duplicate` is true when the client_msg_id had already been stored, and this is the original.
    """

    id: int
    thread_id: UUID
    seq: int
    created_at: datetime
    duplicate: bool = False


class Message(msgspec.Struct, frozen=True):
    """A stored message, opened; `sender_name` is the sender's display name as it is now (read
    with the message), not as it was when it was sent."""

    id: int
    thread_id: UUID
    seq: int
    sender_user_id: UUID
    sender_org_id: UUID
    sender_name: str
    kind: MessageKind
    body: str
    client_msg_id: str
    metadata: dict[str, Any]
    created_at: datetime
    reply_to: int | None = None
    edited_at: datetime | None = None
    deleted_at: datetime | None = None
    requires_ack: bool = False
    change_no: int = 0  # the thread's change that last touched it (hub.storage.changes)
    deleted_by: UUID | None = None
    erased: bool = False  # its organization was erased: its key is destroyed, nothing opens


class ReceiptRecord(msgspec.Struct, frozen=True):
    """A reader's stored position in a thread (`read_receipts` row); on the wire it is the
    `read_receipt` frame (`hub.protocol.ReadReceipt`)."""

    thread_id: UUID
    user_id: UUID
    last_read_seq: int
    read_at: datetime


class ThreadReceipt(msgspec.Struct, frozen=True):
    """A user's read receipt as an opened thread shows it: who they are (their display name and
    organization now) and how far they have read."""

    user_id: UUID
    display_name: str
    organization_id: UUID
    last_read_seq: int
    read_at: datetime


class PresenceRecord(msgspec.Struct, frozen=True):
    """A user's stored presence in a thread (`presence` row); on the wire it is the `presence`
    frame (`hub.protocol.Presence`)."""

    thread_id: UUID
    user_id: UUID
    status: PresenceStatus
    last_seen_at: datetime


class ThreadSnapshot(msgspec.Struct, frozen=True):
    """A thread as one reader opens it (`hub.storage.handle.Storage.thread_snapshot`), all read
    in one statement and so one snapshot: the thread, the reader's position, the presence of
    everyone not offline, everyone's read receipt (highest first), a page of messages (opened,
    oldest first), and whether messages exist beyond the page in the direction it was read."""

    thread: Thread
    reader: ReaderPosition
    presence: list[PresenceRecord]
    receipts: list[ThreadReceipt]
    messages: list[Message]
    has_more: bool


class AuditEntry(msgspec.Struct, frozen=True):
    """One audited action. `at` is filled in by the storage actor when it is committed."""

    action: str
    target_type: str
    target_id: str | None = None
    actor_user_id: UUID | None = None
    actor_org_id: UUID | None = None
    group_id: UUID | None = None
    ip: str | None = None
    user_agent: str | None = None
    details: dict[str, Any] = msgspec.field(default_factory=dict)


class AuditRecord(msgspec.Struct, frozen=True):
    id: int
    at: datetime
    action: str
    target_type: str
    details: dict[str, Any]
    target_id: str | None = None
    actor_user_id: UUID | None = None
    actor_org_id: UUID | None = None
    group_id: UUID | None = None
    ip: str | None = None
    user_agent: str | None = None


class EncryptionKey(msgspec.Struct, frozen=True):
    version: int
    wrapped_key: bytes
    algorithm: str
    status: Literal["active", "retired"]
    created_at: datetime
    retired_at: datetime | None = None
    organization_id: UUID | None = None  # None: the hub-wide key (rows sealed before 0009)
    destroyed_at: datetime | None = None  # its organization was erased: no key any more


T = TypeVar("T")


def row_to(row: dict[str, Any], kind: type[T]) -> T:
    """Convert a row (a dict from either engine) into a record; strings become UUIDs and dates."""
    return msgspec.convert(row, kind)
