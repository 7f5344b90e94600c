"""The swarm's lean frame decoder reads what the hub's protocol module writes, so a change to
the wire format shows up here rather than as a bench that silently measures nothing."""

from __future__ import annotations

import typing
import uuid
from datetime import UTC, datetime

import msgspec
import pytest

from bench.load import frames
from hub import protocol


def test_new_message_from_the_hub_decodes_with_its_send_time():
    thread_id = uuid.uuid4()
    out = protocol.LiveMessage(
        id=7,
        seq=3,
        sender_id=uuid.uuid4(),
        sender_name="Ana",
        org_id=uuid.uuid4(),
        kind="text",
        body="Tent at 3pm",
        client_msg_id="w0s1m1",
        reply_to=None,
        metadata={"t": 12.5},
        created_at=datetime.now(UTC),
    )
    frame = frames.decode_server(
        protocol.encode(protocol.NewMessage(thread_id=thread_id, message=out))
    )
    assert isinstance(frame, frames.NewMessage)
    assert (frame.thread_id, frame.message.seq, frame.message.client_msg_id) == (
        str(thread_id),
        3,
        "w0s1m1",
    )
    assert frame.message.metadata.t == 12.5


def test_message_ack_from_the_hub_decodes_with_its_seq():
    ack = protocol.Ack(
        ref="w0s1m1",
        thread_id=uuid.uuid4(),
        message=protocol.AckedMessage(id=7, seq=3, created_at=datetime.now(UTC)),
    )
    frame = frames.decode_server(protocol.encode(ack))
    assert isinstance(frame, frames.Ack)
    assert (frame.ref, frame.message.seq) == ("w0s1m1", 3)


def test_the_swarm_decodes_every_frame_type_the_hub_sends():
    """A server frame type the swarm does not list would end its read loop mid-run."""
    hub_types = {kind.__struct_config__.tag for kind in typing.get_args(protocol.ServerFrame)}
    swarm_types = {kind.__struct_config__.tag for kind in typing.get_args(frames.ServerFrame)}
    assert hub_types == swarm_types


_USER = protocol.PresenceEntry(user_id=uuid.uuid4(), name="Ana", org_id=uuid.uuid4())
_THREAD = uuid.uuid4()
_AT = datetime(2027, 6, 12, 15, tzinfo=UTC)


@pytest.mark.parametrize(
    ("sent", "read"),
    [
        (
            protocol.Ready(
                user_id=_USER.user_id, session_id="s1", heartbeat_s=20.0, expires_at=1.0
            ),
            frames.Ready(session_id="s1"),
        ),
        (
            protocol.Ack(ref="join", thread_id=_THREAD, last_seq=4, presence=[_USER]),
            frames.Ack(ref="join", last_seq=4),
        ),
        (
            protocol.Error(code="rate_limited", message="slow down", ref="r", retry_after_s=1.0),
            frames.Error(code="rate_limited", message="slow down", ref="r"),
        ),
        (protocol.UserJoined(thread_id=_THREAD, user=_USER), frames.UserJoined()),
        (protocol.UserLeft(thread_id=_THREAD, user_id=_USER.user_id), frames.UserLeft()),
        (
            protocol.Typing(thread_id=_THREAD, user_id=_USER.user_id, is_typing=True),
            frames.Typing(),
        ),
        (
            protocol.Presence(thread_id=_THREAD, user_id=_USER.user_id, status="away"),
            frames.Presence(),
        ),
        (
            protocol.ReadReceipt(thread_id=_THREAD, user_id=_USER.user_id, seq=1),
            frames.ReadReceipt(),
        ),
        (
            protocol.MessageAcknowledged(
                thread_id=_THREAD, seq=3, org_id=_USER.org_id, user_id=_USER.user_id, at=_AT
            ),
            frames.MessageAcknowledged(),
        ),
        (
            protocol.Notification(
                id=7,
                reason="mention",
                urgent=False,
                thread_id=_THREAD,
                seq=3,
                group_id=_USER.org_id,
                created_at=_AT,
            ),
            frames.Notification(),
        ),
        (protocol.Pong(ref="p"), frames.Pong()),
    ],
    ids=lambda frame: type(frame).__name__,
)
def test_every_other_server_frame_decodes_as_its_type_with_the_fields_the_swarm_reads(sent, read):
    """The swarm dispatches on the decoded type and reads the session id, the join ack's ref and
    an error's code and ref: a frame renamed in the hub must not decode as defaults here."""
    assert frames.decode_server(protocol.encode(sent)) == read


def test_the_frames_the_swarm_sends_are_valid_client_frames():
    thread_id = str(uuid.uuid4())
    join = protocol.decode_client(frames.join_thread(thread_id, "join"))
    assert isinstance(join, protocol.JoinThread) and join.ref == "join"
    send = protocol.decode_client(frames.send_message(thread_id, "w0s1m1", "hello", 1.25))
    assert isinstance(send, protocol.SendMessage)
    assert (send.client_msg_id, send.ref, send.metadata) == ("w0s1m1", "w0s1m1", {"t": 1.25})
    assert msgspec.json.decode(frames.send_message(thread_id, "x", "b", 0.0))["type"] == (
        "send_message"
    )
