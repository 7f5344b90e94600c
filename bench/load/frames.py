"""The protocol frames the swarm reads and writes, decoded leanly.

The swarm holds thousands of sockets in one process, so it decodes only the fields it measures
(seq, client_msg_id, the send timestamp in metadata) into plain msgspec Structs, leaving UUIDs and
datetimes as strings. These mirror `hub/protocol.py` (tests/bench/test_frames.py decodes frames the
hub encodes, so a drift shows up in CI); the peer in `bench/peers/` speaks the same frames.
"""

from __future__ import annotations

import msgspec


class _Frame(msgspec.Struct, tag_field="type"):
    pass


class BenchMetadata(msgspec.Struct):
    """What the swarm puts in a message's metadata: the sender's monotonic send time (seconds,
    CLOCK_MONOTONIC is one clock for every process on the machine)."""

    t: float = 0.0


class LiveMessage(msgspec.Struct):
    seq: int
    client_msg_id: str
    metadata: BenchMetadata = msgspec.field(default_factory=BenchMetadata)


class AckedMessage(msgspec.Struct):
    seq: int


class Ready(_Frame, tag="ready"):
    session_id: str = ""


class Ack(_Frame, tag="ack"):
    ref: str | None = None
    last_seq: int | None = None
    message: AckedMessage | None = None


class NewMessage(_Frame, tag="new_message"):
    thread_id: str
    message: LiveMessage


class Error(_Frame, tag="error"):
    code: str
    message: str = ""
    ref: str | None = None


# Frames the swarm receives but does not measure; listed so they decode without a fallback path.
class UserJoined(_Frame, tag="user_joined"):
    pass


class UserLeft(_Frame, tag="user_left"):
    pass


class Typing(_Frame, tag="typing"):
    pass


class Presence(_Frame, tag="presence"):
    pass


class ReadReceipt(_Frame, tag="read_receipt"):
    pass


class MessageAcknowledged(_Frame, tag="message_acknowledged"):
    pass


class Notification(_Frame, tag="notification"):
    pass


class MessageEdited(_Frame, tag="message_edited"):
    pass


class MessageDeleted(_Frame, tag="message_deleted"):
    pass


class NotificationsRead(_Frame, tag="notifications_read"):
    pass


class Pong(_Frame, tag="pong"):
    pass


ServerFrame = (
    Ready
    | Ack
    | NewMessage
    | Error
    | UserJoined
    | UserLeft
    | Typing
    | Presence
    | ReadReceipt
    | MessageAcknowledged
    | Notification
    | NotificationsRead
    | MessageEdited
    | MessageDeleted
    | Pong
)
decode_server = msgspec.json.Decoder(ServerFrame).decode

_encoder = msgspec.json.Encoder()


def join_thread(thread_id: str, ref: str) -> str:
    return _encoder.encode({"type": "join_thread", "thread_id": thread_id, "ref": ref}).decode()


def send_message(thread_id: str, client_msg_id: str, body: str, sent_at: float) -> str:
    """A send_message frame whose ref is its client_msg_id, so the ack is matched without a map."""
    frame = {
        "type": "send_message",
        "thread_id": thread_id,
        "body": body,
        "client_msg_id": client_msg_id,
        "metadata": {"t": sent_at},
        "ref": client_msg_id,
    }
    return _encoder.encode(frame).decode()
