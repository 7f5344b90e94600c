"""A new message over WebSocket follows the same rules as over REST, and is audited the same.

Before, `send_message` took `kind: "system"` and `"attachment"` from any member, a body of white
space, a location without coordinates and 20,000 characters where REST allowed 10,000 (issue 16,
item 13), and left no audit row (item 14). Values the databases cannot store (item 7) are
`invalid` naming the field, and never fail a neighbour's message (item 2).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import hypothesis
import pytest
import trio
from hypothesis import strategies as st
from trio_websocket import open_websocket_url

from hub import protocol
from hub.auth import issue_token
from hub.storage.audit import audit_rows
from tests import fuzzcount
from tests.realtime.helpers import close_code, raw_socket, receive, receive_until

BEYOND_BIGINT = 2**63


async def _request(ws, frame: dict[str, Any], max_frame: int = 64 * 1024) -> Any:
    """Send a raw frame with a ref and return the server's answer to it. A frame over the size
    limit is refused unread, so its answer carries no ref."""
    ref = uuid.uuid4().hex
    text = json.dumps({**frame, "ref": ref})
    await ws.send_message(text)
    oversized = len(text.encode()) > max_frame
    while True:
        answer = await receive(ws)
        if getattr(answer, "ref", None) == ref or (
            oversized and isinstance(answer, protocol.Error)
        ):
            return answer


def _send(thread_id, **fields: Any) -> dict[str, Any]:
    return {
        "type": "send_message",
        "thread_id": str(thread_id),
        "client_msg_id": uuid.uuid4().hex,
        **fields,
    }


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"body": "we are the hub now", "kind": "system"}, "kind"),
        ({"body": "x", "kind": "attachment"}, "attachment_ids"),
        ({"body": "   \n\t "}, "body"),
        ({"body": "", "kind": "text"}, "body"),
        ({"kind": "location", "latitude": 51.5}, "longitude"),
        ({"kind": "location", "longitude": -0.1}, "latitude"),
        ({"body": "x", "latitude": 51.5, "longitude": -0.1}, "latitude"),
        ({"body": "x" * 10_001}, "body"),
        ({"body": "x", "reply_to": BEYOND_BIGINT}, "reply_to"),
        ({"body": "x", "client_msg_id": "a\u0000b"}, "client_msg_id"),
        ({"body": "x", "metadata": {"note": "a\u0000"}}, "metadata.note"),
        ({"body": "x", "metadata": {"a": [[[[[[[[[1]]]]]]]]]}}, "metadata"),
    ],
)
async def test_a_send_the_rest_door_would_refuse_is_invalid_naming_the_field(world, fields, named):
    async with raw_socket(world.hub.ws_url, world.alice.token) as ws:
        await receive_until(ws, protocol.Ready)
        answer = await _request(ws, _send(world.thread.id, **fields))

    assert isinstance(answer, protocol.Error), answer
    assert answer.code == "invalid"
    assert named in answer.message
    assert await world.hub.storage.messages(world.thread.id) == []


async def test_sends_within_the_rules_are_stored_as_over_rest(world):
    async with raw_socket(world.hub.ws_url, world.alice.token) as ws:
        await receive_until(ws, protocol.Ready)
        longest = await _request(ws, _send(world.thread.id, body="x" * 10_000))
        location = await _request(
            ws, _send(world.thread.id, kind="location", latitude=51.5, longitude=-0.14)
        )

    assert isinstance(longest, protocol.Ack) and isinstance(location, protocol.Ack)
    first, second = await world.hub.storage.messages(world.thread.id)
    assert len(first.body) == 10_000
    assert (second.kind, second.body) == ("location", "")
    assert second.metadata == {"latitude": 51.5, "longitude": -0.14}


async def test_out_of_range_seqs_are_invalid_not_internal(world):
    async with raw_socket(world.hub.ws_url, world.alice.token) as ws:
        await receive_until(ws, protocol.Ready)
        join = await _request(
            ws, {"type": "join_thread", "thread_id": str(world.thread.id), "since_seq": 2**63}
        )
        read = await _request(
            ws, {"type": "mark_read", "thread_id": str(world.thread.id), "seq": 2**63}
        )

    for answer, field in ((join, "since_seq"), (read, "seq")):
        assert isinstance(answer, protocol.Error)
        assert (answer.code, field in answer.message) == ("invalid", True)


async def test_a_websocket_send_is_audited_with_the_handshakes_address_and_client(world):
    headers = [
        (b"authorization", f"Bearer {world.alice.token}".encode()),
        (b"user-agent", b"FloristApp/2.1 (Android)"),
    ]
    async with open_websocket_url(world.hub.ws_url, extra_headers=headers) as ws:
        await receive_until(ws, protocol.Ready)
        ack = await _request(ws, _send(world.thread.id, body="Peonies at 2", client_msg_id="p-1"))
        again = await _request(ws, _send(world.thread.id, body="Peonies at 2", client_msg_id="p-1"))

    assert isinstance(ack, protocol.Ack) and again.duplicate is True
    [row] = await world.hub.storage.read(audit_rows(action="message.send"))
    assert (row.target_type, row.target_id) == ("message", "p-1")
    assert (row.actor_user_id, row.actor_org_id) == (world.alice.user_id, world.alice.org_id)
    assert row.group_id == world.thread.group_id
    assert row.ip == "127.0.0.1"
    assert row.user_agent == "FloristApp/2.1 (Android)"
    assert row.details["thread_id"] == str(world.thread.id)
    assert "Peonies" not in json.dumps(row.details)  # the body stays out of the audit trail


async def test_a_token_whose_name_holds_nul_is_closed_4001_not_1011(world):
    token = issue_token(
        world.settings,
        user_id=uuid.uuid4(),
        org_id=uuid.uuid4(),
        role="owner",
        name="Eve\u0000",
    )
    async with raw_socket(world.hub.ws_url, token) as ws:
        error = await receive(ws)
        code = await close_code(ws)

    assert isinstance(error, protocol.Error) and error.code == "unauthorized"
    assert code == protocol.CLOSE_UNAUTHORIZED


async def test_hostile_sends_beside_innocent_ones_leave_every_innocent_message_stored(world, alice):
    hostile = [
        _send(world.thread.id, body="x", reply_to=BEYOND_BIGINT),
        _send(world.thread.id, body="x", metadata={"k": "\u0000"}),
        _send(world.thread.id, body="x", client_msg_id="\u0000"),
        _send(world.thread.id, body="x", kind="system"),
    ]
    codes: list[str] = []

    async def attack(ws) -> None:
        for frame in hostile * 5:
            answer = await _request(ws, frame)
            codes.append(answer.code)

    async with raw_socket(world.hub.ws_url, world.bob.token) as ws:
        await receive_until(ws, protocol.Ready)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(attack, ws)
            for i in range(40):
                nursery.start_soon(alice.send, world.thread.id, f"ok {i}")

    assert set(codes) == {"invalid"}
    bodies = sorted(m.body for m in await world.hub.storage.messages(world.thread.id, limit=200))
    assert bodies == sorted(f"ok {i}" for i in range(40))


# --- fuzz: generated send_message frames on an authenticated socket -------------------------------

_text = st.text(max_size=20) | st.sampled_from(["", " ", "\u0000", "x" * 10_001])
_int = st.integers(min_value=-(2**70), max_value=2**70) | st.sampled_from([0, 2**63 - 1, 2**63])
_json = st.recursive(
    st.none() | st.booleans() | _int | st.floats(allow_nan=False, allow_infinity=False) | _text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=10,
)
_fields = st.fixed_dictionaries(
    {},
    optional={
        "body": _text,
        "kind": st.sampled_from(["text", "location", "system", "attachment", "", "TEXT"]),
        "client_msg_id": _text,
        "reply_to": _int | _text,
        "metadata": _json,
        "latitude": _json,
        "longitude": _json,
    },
)


async def test_generated_sends_are_answered_never_internal_and_never_end_the_socket(world):
    """Each generated frame gets an ack or a 4xx-like error (`invalid`, `not_found`...), never
    `internal`; the abuse limit is lifted by the sheer number of good frames in between."""
    frames: list[dict[str, Any]] = []

    @fuzzcount.against_a_server(200)
    @hypothesis.given(fields=_fields)
    def collect(fields) -> None:
        frames.append(_send(world.thread.id, **fields))

    collect()
    answers: list[str] = []
    for start in range(0, len(frames), 15):  # a fresh socket before the abuse limit (20)
        async with raw_socket(world.hub.ws_url, world.alice.token) as ws:
            await receive_until(ws, protocol.Ready)
            for frame in frames[start : start + 15]:
                answer = await _request(ws, frame, world.settings.ws_max_frame)
                fuzzcount.count("WebSocket frames after authentication")
                if isinstance(answer, protocol.Error):
                    answers.append(answer.code)
                else:
                    answers.append("duplicate" if answer.duplicate else "ack")

    assert "internal" not in answers
    assert len(answers) == len(frames)
    # Every message that was acknowledged is stored, once.
    stored = await world.hub.storage.messages(world.thread.id, limit=500)
    assert len(stored) == answers.count("ack")
