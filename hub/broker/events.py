"""What crosses nodes, as bytes: the events a node publishes on a thread's channel and on the
control channel every node hears. Pure: no I/O.

A thread event carries the WebSocket frame the publishing node already encoded for its own
subscribers (`hub.frames.event_frame`), so a receiving node writes the same bytes to its sockets
without decoding or re-encoding anything: encode once, across the cluster. Beside the frame it
carries what the receiving thread actor must know to keep its own state (a message's seq for
ordering, who is typing for the 6 s expiry, who is present).

Every event names the node that published it (`origin`), so a node drops its own events, which
Redis hands back to it as to every subscriber of the channel.
"""

from __future__ import annotations

from uuid import UUID

import msgspec


class MessageCommitted(msgspec.Struct, tag="m", array_like=True, frozen=True):
    """A message committed by `origin`: `frame` is its `new_message` event."""

    origin: str
    seq: int
    frame: bytes


class TypingChanged(msgspec.Struct, tag="t", array_like=True, frozen=True):
    origin: str
    user_id: UUID
    is_typing: bool
    frame: bytes


class ReceiptRead(msgspec.Struct, tag="r", array_like=True, frozen=True):
    origin: str
    frame: bytes


class Acknowledged(msgspec.Struct, tag="a", array_like=True, frozen=True):
    """An organization confirmed a message: `frame` is its `message_acknowledged` event."""

    origin: str
    frame: bytes


class MessageChanged(msgspec.Struct, tag="c", array_like=True, frozen=True):
    """A message was edited or deleted: `frame` is its `message_edited` or `message_deleted`
    event; `change_no` its number (subscribers order changes by it)."""

    origin: str
    change_no: int
    frame: bytes


class UserJoined(msgspec.Struct, tag="j", array_like=True, frozen=True):
    """The user is in the thread now, on some node; `entry` is their encoded
    `protocol.PresenceEntry`."""

    origin: str
    user_id: UUID
    entry: bytes
    frame: bytes


class UserLeft(msgspec.Struct, tag="l", array_like=True, frozen=True):
    """The user is in the thread on no node any more (left, or their node's presence expired)."""

    origin: str
    user_id: UUID
    frame: bytes


class StatusChanged(msgspec.Struct, tag="s", array_like=True, frozen=True):
    origin: str
    user_id: UUID
    entry: bytes
    frame: bytes


ThreadEvent = (
    MessageCommitted
    | TypingChanged
    | ReceiptRead
    | Acknowledged
    | MessageChanged
    | UserJoined
    | UserLeft
    | StatusChanged
)


class MembershipRevoked(msgspec.Struct, tag="revoked", array_like=True, frozen=True):
    """An organization was removed from a group: every node ends its live traffic there."""

    origin: str
    group_id: UUID
    organization_id: UUID


class UserStatusSet(msgspec.Struct, tag="status", array_like=True, frozen=True):
    """A user set their status (online, away, busy) on `origin`: every node with one of their
    sessions tells the threads those sessions joined."""

    origin: str
    user_id: UUID
    status: str


class UserNotified(msgspec.Struct, tag="notified", array_like=True, frozen=True):
    """An event for a user (`frame`: `notification`, `notifications_read`): every node with one
    of their sessions writes it to them. At most once, like every control event: the user's inbox
    (`GET /me/notifications`) is what keeps it."""

    origin: str
    user_id: UUID
    frame: bytes


class UserErased(msgspec.Struct, tag="user_erased", array_like=True, frozen=True):
    """A user was erased: every node closes their sockets and forgets what it remembered of
    their identity, so their tokens are refused there at once too."""

    origin: str
    user_id: UUID


ControlEvent = MembershipRevoked | UserStatusSet | UserNotified | UserErased

_encoder = msgspec.msgpack.Encoder()
_thread_decoder = msgspec.msgpack.Decoder(ThreadEvent)
_control_decoder = msgspec.msgpack.Decoder(ControlEvent)


def encode(event: ThreadEvent | ControlEvent) -> bytes:
    return _encoder.encode(event)


def decode_thread_event(payload: bytes) -> ThreadEvent:
    """The event, or msgspec.DecodeError for bytes no hub node wrote."""
    return _thread_decoder.decode(payload)


def decode_control_event(payload: bytes) -> ControlEvent:
    return _control_decoder.decode(payload)
