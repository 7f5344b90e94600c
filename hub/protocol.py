"""The WebSocket protocol: every frame as a msgspec Struct, encoding and decoding. No I/O.

Frames are JSON text objects tagged by `"type"`. Client frames decode in one call into the
`ClientFrame` union; anything that does not decode (bad JSON, unknown type, missing or wrong
fields) raises `ProtocolError` carrying the frame's `ref` when one could be read, so the session
can answer `invalid` and keep the connection. Server frames are encoded once per event and the
same text is sent to every subscriber (see `hub.actors.thread`).

The client (`hub.client`) decodes server frames with `decode_server`, so both ends share one
definition of the wire format; `docs/protocol.md` describes it for everyone else.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec

from hub.validation import (
    AttachmentIds,
    ClientKind,
    ClientMsgId,
    Latitude,
    Longitude,
    MessageBody,
    MessageId,
    PositiveSeq,
    Seq,
    readable,
)

PresenceStatus = Literal["online", "away", "busy", "offline"]
MessageKind = Literal["text", "location", "system", "attachment", "change"]
ErrorCode = Literal[
    "invalid",
    "unauthorized",
    "forbidden",
    "not_found",
    "rate_limited",
    "overloaded",
    "storage_unavailable",
    "internal",
]

Ref = Annotated[str, msgspec.Meta(max_length=100)]
Token = Annotated[str, msgspec.Meta(min_length=1, max_length=8192)]

# Close codes (RFC 6455 leaves 4000-4999 to applications).
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001  # the server is shutting down; reconnect later
CLOSE_PROTOCOL_ERROR = 1002  # a frame broke RFC 6455 (bad opcode, unmasked, bad fragment...)
CLOSE_UNSUPPORTED_DATA = 1003  # a binary frame: the protocol is JSON text only
CLOSE_INVALID_PAYLOAD = 1007  # a text frame that is not UTF-8
CLOSE_TOO_BIG = 1009  # a frame beyond the hard transport limit (16 x the frame limit)
CLOSE_HEARTBEAT_TIMEOUT = 4000  # the peer did not answer pings in time
CLOSE_UNAUTHORIZED = 4001  # missing, bad or expired token; do not reconnect with it
CLOSE_POLICY = 4008  # repeated invalid or over-limit frames
CLOSE_SLOW_CONSUMER = 4009  # the outgoing queue overflowed; reconnect with since_seq
CLOSE_TOO_MANY_CONNECTIONS = 4029  # this user already has the allowed number of sockets
CLOSE_INTERNAL = 1011


class ProtocolError(Exception):
    """A client frame that could not be understood; answered with `invalid`."""

    def __init__(self, message: str, ref: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.ref = ref


class _Frame(msgspec.Struct, tag_field="type", forbid_unknown_fields=True, omit_defaults=True):
    pass


# --- client → server ----------------------------------------------------------------------------


class Auth(_Frame, tag="auth"):
    token: Token
    ref: Ref | None = None


class JoinThread(_Frame, tag="join_thread"):
    """`since_seq`: replay the messages after it; `since_change`: also the edits and deletions
    of earlier messages made after that change (the ack's `last_change`, or the last
    `change_no` seen)."""

    thread_id: UUID
    since_seq: Seq | None = None
    since_change: Seq | None = None
    ref: Ref | None = None


class LeaveThread(_Frame, tag="leave_thread"):
    thread_id: UUID
    ref: Ref | None = None


class SendMessage(_Frame, tag="send_message"):
    """A new message: the same fields and rules as REST's `POST /threads/{id}`
    (hub.validation.message_content)."""

    thread_id: UUID
    client_msg_id: ClientMsgId
    body: MessageBody = ""
    kind: ClientKind = "text"
    reply_to: MessageId | None = None
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    latitude: Latitude | None = None
    longitude: Longitude | None = None
    attachment_ids: AttachmentIds = msgspec.field(default_factory=list)
    requires_ack: bool = False
    ref: Ref | None = None


class EditMessage(_Frame, tag="edit_message"):
    """Replace the text of one's own message (REST `PUT /threads/{id}/messages/{seq}`)."""

    thread_id: UUID
    seq: PositiveSeq
    body: MessageBody
    ref: Ref | None = None


class DeleteMessage(_Frame, tag="delete_message"):
    """Delete one's own message, or any in a group one's organization owns as its owner or
    admin (REST `DELETE /threads/{id}/messages/{seq}`); a tombstone keeps its seq."""

    thread_id: UUID
    seq: PositiveSeq
    ref: Ref | None = None


class AckMessage(_Frame, tag="ack_message"):
    """Confirm, for the caller's organization, a message that asked for acknowledgement."""

    thread_id: UUID
    seq: PositiveSeq
    ref: Ref | None = None


class TypingIndicator(_Frame, tag="typing_indicator"):
    thread_id: UUID
    is_typing: bool
    ref: Ref | None = None


class UpdatePresence(_Frame, tag="update_presence"):
    status: PresenceStatus
    ref: Ref | None = None


class MarkRead(_Frame, tag="mark_read"):
    thread_id: UUID
    seq: Seq
    ref: Ref | None = None


class Ping(_Frame, tag="ping"):
    ref: Ref | None = None


ClientFrame = (
    Auth
    | JoinThread
    | LeaveThread
    | SendMessage
    | TypingIndicator
    | UpdatePresence
    | MarkRead
    | AckMessage
    | EditMessage
    | DeleteMessage
    | Ping
)

# --- server → client ----------------------------------------------------------------------------


class PresenceEntry(msgspec.Struct, omit_defaults=True):
    user_id: UUID
    name: str
    org_id: UUID
    status: PresenceStatus = "online"


class AckedMessage(msgspec.Struct):
    """The stored message an `ack` to `send_message` confirms (REST answers with
    `hub.http.schemas.MessageAck`)."""

    id: int
    seq: int
    created_at: datetime


class LiveMessage(msgspec.Struct):
    """A message as a `new_message` frame delivers it to live subscribers (REST pages carry
    `hub.http.schemas.MessageOut`)."""

    id: int
    seq: int
    sender_id: UUID
    sender_name: str
    org_id: UUID
    kind: MessageKind
    body: str
    client_msg_id: str
    reply_to: int | None
    metadata: dict[str, Any]
    created_at: datetime
    requires_ack: bool = False
    edited_at: datetime | None = None
    deleted_at: datetime | None = None  # a tombstone: no body, metadata or attachments
    change_no: int = 0  # the thread's change that last touched it (0: never changed)
    erased: bool = False  # its organization was erased: unreadable for good


class Ready(_Frame, tag="ready"):
    user_id: UUID
    session_id: str
    heartbeat_s: float
    expires_at: float


class Ack(_Frame, tag="ack"):
    """The reply to a request. Which fields are present depends on the request (see the docs)."""

    ref: str | None = None
    thread_id: UUID | None = None
    last_seq: int | None = None
    presence: list[PresenceEntry] | None = None
    recovered: bool | None = None
    message: AckedMessage | None = None
    duplicate: bool | None = None
    seq: int | None = None
    status: PresenceStatus | None = None
    expires_at: float | None = None
    last_change: int | None = None
    change_no: int | None = None


class NewMessage(_Frame, tag="new_message"):
    thread_id: UUID
    message: LiveMessage


class UserJoined(_Frame, tag="user_joined"):
    thread_id: UUID
    user: PresenceEntry


class UserLeft(_Frame, tag="user_left"):
    thread_id: UUID
    user_id: UUID


class Typing(_Frame, tag="typing"):
    thread_id: UUID
    user_id: UUID
    is_typing: bool


class Presence(_Frame, tag="presence"):
    thread_id: UUID
    user_id: UUID
    status: PresenceStatus


class ReadReceipt(_Frame, tag="read_receipt"):
    thread_id: UUID
    user_id: UUID
    seq: int


class MessageAcknowledged(_Frame, tag="message_acknowledged"):
    """An organization confirmed message `seq` (its first user to do so: `user_id`); the
    names are carried so that a board can say who without asking the hub again."""

    thread_id: UUID
    seq: int
    org_id: UUID
    user_id: UUID
    at: datetime
    user_name: str | None = None
    org_name: str | None = None


class Notification(_Frame, tag="notification"):
    """Something the user should see (docs/notifications.md): on each of their sockets, once
    per delivery; `id` is the inbox entry's, so a repeated delivery is recognisable. `quiet`
    is true during the user's quiet hours (show it, do not alert)."""

    id: int
    reason: str
    urgent: bool
    thread_id: UUID
    seq: int
    group_id: UUID
    created_at: datetime
    quiet: bool = False
    group_name: str | None = None
    thread_title: str | None = None
    sender_name: str | None = None
    preview: str | None = None


class NotificationsRead(_Frame, tag="notifications_read"):
    """Some of the user's notifications were marked read (`ids`; every unread one when `all`),
    on one of their devices or by reading a thread: every socket of the user gets it, so each
    device's count agrees with the inbox's without asking."""

    unread_count: int
    ids: list[int] = []
    all: bool = False


class MessageEdited(_Frame, tag="message_edited"):
    """Message `seq` has new text (and the metadata that follows from it: its mentions);
    `change_no` orders it among the thread's changes: apply it only over an older one."""

    thread_id: UUID
    seq: int
    id: int
    body: str
    metadata: dict[str, Any]
    edited_at: datetime
    change_no: int


class MessageDeleted(_Frame, tag="message_deleted"):
    """Message `seq` was deleted (`by` its sender, or an owner or admin of the group's
    organization): show a tombstone in its place."""

    thread_id: UUID
    seq: int
    id: int
    deleted_at: datetime
    by: UUID
    change_no: int


class Pong(_Frame, tag="pong"):
    ref: str | None = None


class Error(_Frame, tag="error"):
    code: ErrorCode
    message: str
    ref: str | None = None
    thread_id: UUID | None = None
    retry_after_s: float | None = None


ServerFrame = (
    Ready
    | Ack
    | NewMessage
    | UserJoined
    | UserLeft
    | Typing
    | Presence
    | ReadReceipt
    | MessageAcknowledged
    | MessageEdited
    | MessageDeleted
    | Notification
    | NotificationsRead
    | Pong
    | Error
)

# --- encoding and decoding ----------------------------------------------------------------------

_client_decoder = msgspec.json.Decoder(ClientFrame)
_server_decoder = msgspec.json.Decoder(ServerFrame)
_ref_decoder = msgspec.json.Decoder(dict[str, Any])
_encoder = msgspec.json.Encoder()


# What decoding a frame may raise besides a well-formed answer: msgspec's own errors (bad JSON,
# wrong fields; ValidationError is a DecodeError), RecursionError for JSON nested deeper than the
# interpreter's recursion limit allows (msgspec counts each nesting level against it, so about
# 1,000 levels minus the caller's stack depth), and UnicodeEncodeError for a `str` holding lone
# surrogates (which cannot come off the wire, since the transport checks UTF-8, but can be passed
# in).
_UNDECODABLE = (msgspec.DecodeError, RecursionError, UnicodeEncodeError)


def decode_client(data: str | bytes) -> ClientFrame:
    """One client frame, or ProtocolError saying what is wrong (with the frame's ref if any).

    No input raises anything else: a frame is the first thing an unauthenticated peer controls."""
    try:
        return _client_decoder.decode(data)
    except _UNDECODABLE as exc:
        raise ProtocolError(_explain(exc), _salvage_ref(data)) from None


def decode_server(data: str | bytes) -> ServerFrame:
    """One server frame (for the client); ProtocolError if the server sent nonsense."""
    try:
        return _server_decoder.decode(data)
    except _UNDECODABLE as exc:
        raise ProtocolError(_explain(exc)) from None


def encode(frame: ServerFrame | ClientFrame) -> str:
    """A frame as JSON text, ready for a WebSocket text message."""
    return _encoder.encode(frame).decode()


def encode_bytes(frame: ServerFrame | ClientFrame) -> bytes:
    """A frame as UTF-8 JSON, for transports that frame the bytes themselves."""
    return _encoder.encode(frame)


def _explain(exc: Exception) -> str:
    if isinstance(exc, RecursionError):
        return "malformed JSON: nested too deeply"
    if isinstance(exc, UnicodeEncodeError):
        return "malformed text: not valid Unicode (a lone surrogate)"
    text = readable(str(exc))
    if text.startswith("Invalid value") and "`$.type`" in text:
        return f"unknown frame type: {text}"
    if text.startswith("JSON is malformed") or text.startswith("Input data was truncated"):
        return f"malformed JSON: {text}"
    return text


def _salvage_ref(data: str | bytes) -> str | None:
    try:
        value = _ref_decoder.decode(data).get("ref")
    except _UNDECODABLE:
        return None
    return value if isinstance(value, str) and len(value) <= 100 else None
