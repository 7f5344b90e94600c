"""The wire format on its own: bytes in, typed frames out, no sockets."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub import protocol

THREAD = uuid.uuid4()


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ('{"type":"auth","token":"t"}', protocol.Auth),
        (f'{{"type":"join_thread","thread_id":"{THREAD}","since_seq":3}}', protocol.JoinThread),
        (f'{{"type":"leave_thread","thread_id":"{THREAD}"}}', protocol.LeaveThread),
        (
            f'{{"type":"send_message","thread_id":"{THREAD}","body":"hi","client_msg_id":"c1"}}',
            protocol.SendMessage,
        ),
        (
            f'{{"type":"typing_indicator","thread_id":"{THREAD}","is_typing":true}}',
            protocol.TypingIndicator,
        ),
        ('{"type":"update_presence","status":"away"}', protocol.UpdatePresence),
        (f'{{"type":"mark_read","thread_id":"{THREAD}","seq":4}}', protocol.MarkRead),
        ('{"type":"ping","ref":"p1"}', protocol.Ping),
    ],
)
def test_every_client_frame_type_decodes_in_one_call(text, kind):
    assert isinstance(protocol.decode_client(text), kind)


def test_malformed_json_is_a_protocol_error():
    with pytest.raises(protocol.ProtocolError, match="malformed JSON"):
        protocol.decode_client("{not json")


def test_an_unknown_type_is_a_protocol_error_that_keeps_the_ref():
    with pytest.raises(protocol.ProtocolError, match="unknown frame type") as caught:
        protocol.decode_client('{"type":"launch_rockets","ref":"r9"}')
    assert caught.value.ref == "r9"


def test_a_missing_field_is_a_protocol_error():
    with pytest.raises(protocol.ProtocolError, match="thread_id"):
        protocol.decode_client('{"type":"join_thread","ref":"r1"}')


def test_a_wrong_field_type_is_a_protocol_error():
    with pytest.raises(protocol.ProtocolError):
        protocol.decode_client(f'{{"type":"mark_read","thread_id":"{THREAD}","seq":-1}}')


def test_unknown_fields_are_refused():
    with pytest.raises(protocol.ProtocolError):
        protocol.decode_client('{"type":"ping","extra":1}')


def test_server_frames_leave_out_absent_fields():
    text = protocol.encode(protocol.Ack(ref="r1", thread_id=THREAD))
    assert msgspec.json.decode(text) == {"type": "ack", "ref": "r1", "thread_id": str(THREAD)}


def _invalid_frame_as_the_client_reads_it(error: protocol.ProtocolError) -> protocol.Error:
    """The `invalid` error the session answers a frame it cannot decode with, sent and read back:
    whatever the peer sent, the answer must encode and decode unchanged."""
    sent = protocol.Error(code="invalid", message=error.message, ref=error.ref)
    received = protocol.decode_server(protocol.encode(sent))
    assert received == sent
    return received


@given(st.binary(max_size=300))
def test_any_bytes_decode_to_a_frame_or_a_protocol_error(data):
    """No other exception, a frame that survives a round trip, or an error frame the client
    can read (with no ref, or one short enough to echo)."""
    try:
        frame = protocol.decode_client(data)
    except protocol.ProtocolError as exc:
        error = _invalid_frame_as_the_client_reads_it(exc)
        assert error.message
        assert error.ref is None or len(error.ref) <= 100
        return
    assert protocol.decode_client(protocol.encode(frame)) == frame


json_values = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=20)
    | st.sampled_from(["join_thread", "send_message", "ping", str(THREAD)])
    | st.lists(st.integers(), max_size=3)
)


@given(st.dictionaries(st.sampled_from(["type", "thread_id", "ref", "body", "seq"]), json_values))
def test_any_json_object_decodes_to_a_frame_or_a_protocol_error(obj):
    """A frame of the type the object names, holding exactly the values it sent; or an error
    frame the client can read that echoes the object's ref when it sent a string one, so the
    client can tell which request failed."""
    try:
        frame = protocol.decode_client(msgspec.json.encode(obj))
    except protocol.ProtocolError as exc:
        error = _invalid_frame_as_the_client_reads_it(exc)
        assert error.message
        sent_ref = obj.get("ref")
        assert error.ref == (sent_ref if isinstance(sent_ref, str) else None)
        return
    assert type(frame).__struct_config__.tag == obj["type"]
    fields = {key: value for key, value in obj.items() if key != "type"}
    assert {key: msgspec.to_builtins(getattr(frame, key)) for key in fields} == fields


_stored_text = st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",))


@given(
    body=st.text(_stored_text, min_size=1, max_size=200),
    client_msg_id=st.text(_stored_text, min_size=1, max_size=100),
    ref=st.none() | st.text(max_size=100),
    reply_to=st.none() | st.integers(min_value=1, max_value=2**63 - 1),
)
def test_send_message_survives_a_round_trip(body, client_msg_id, ref, reply_to):
    frame = protocol.SendMessage(
        thread_id=THREAD, body=body, client_msg_id=client_msg_id, ref=ref, reply_to=reply_to
    )
    assert protocol.decode_client(protocol.encode(frame)) == frame


@given(seq=st.integers(min_value=1, max_value=2**62), body=st.text(max_size=200))
def test_new_message_frames_survive_a_round_trip(seq, body):
    frame = protocol.NewMessage(
        thread_id=THREAD,
        message=protocol.LiveMessage(
            id=seq,
            seq=seq,
            sender_id=THREAD,
            sender_name="Alice",
            org_id=THREAD,
            kind="text",
            body=body,
            client_msg_id="c",
            reply_to=None,
            metadata={"k": [1, "two"]},
            created_at=datetime(2026, 6, 1, 12, tzinfo=UTC),
        ),
    )
    assert protocol.decode_server(protocol.encode(frame)) == frame


@given(
    field=st.sampled_from(["client_msg_id", "body"]),
    text=st.text(max_size=20).map(lambda t: t + "\x00"),
)
def test_a_send_with_nul_in_stored_text_is_a_protocol_error_naming_the_field(field, text):
    frame = {"type": "send_message", "thread_id": str(THREAD), "client_msg_id": "c", field: text}
    with pytest.raises(protocol.ProtocolError, match=f"NUL.*{field}"):
        protocol.decode_client(msgspec.json.encode(frame))


@given(value=st.integers(min_value=2**63, max_value=2**80))
def test_seqs_and_ids_beyond_bigint_are_protocol_errors(value):
    for frame in (
        {"type": "join_thread", "thread_id": str(THREAD), "since_seq": value},
        {"type": "mark_read", "thread_id": str(THREAD), "seq": value},
        {"type": "send_message", "thread_id": str(THREAD), "client_msg_id": "c", "reply_to": value},
    ):
        with pytest.raises(protocol.ProtocolError, match="<= 9223372036854775807"):
            protocol.decode_client(msgspec.json.encode(frame))


@pytest.mark.parametrize("depth", [990, 1000, 5000, 100_000])
@pytest.mark.parametrize(
    "opener", ["[", '{"a":', '{"type":"send_message","metadata":{"m":'], ids=["list", "obj", "meta"]
)
def test_json_nested_too_deeply_is_a_protocol_error_not_a_recursion_error(depth, opener):
    # msgspec raises RecursionError near the interpreter's recursion limit (about 1,000 levels,
    # less the caller's stack); a frame is the first thing an unauthenticated peer controls.
    for text in (opener * depth, opener * depth + "1" + "]" * depth):
        with pytest.raises(protocol.ProtocolError):
            protocol.decode_client(text)
        with pytest.raises(protocol.ProtocolError):
            protocol.decode_server(text)


def test_a_string_with_a_lone_surrogate_is_a_protocol_error():
    with pytest.raises(protocol.ProtocolError):
        protocol.decode_client('{"type":"ping","ref":"\ud800"}')
