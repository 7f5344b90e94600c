"""The WebSocket transport against hostile input: frames that do not decode, frames that break
RFC 6455, peers that never answer a close, a token refresh to another organization. Raw bytes
over real sockets (tests/realtime/rawws.py), since a client library refuses to send most of it.

The fuzz tests run hypothesis in a worker thread with blocking sockets while the hub serves in
the Trio thread; each prints how many inputs it tried (run with -s to see the counts)."""

from __future__ import annotations

import codecs
import os
import subprocess
import sys
import uuid

import hypothesis
import pytest
import trio
from hypothesis import strategies as st
from wsproto.frame_protocol import CloseReason

from hub import protocol
from hub.auth import issue_token
from tests import fuzzcount
from tests.realtime import rawws
from tests.realtime.helpers import raw_socket, receive, send
from tests.realtime.rawws import BINARY, CLOSE, CONTINUATION, PING, PONG, TEXT, RawSocket, frame

DEEP = '{"a":' + "[" * 1000  # the frame that ended the process (issue 16, item 1)


def _in_thread(function, *args):
    return trio.to_thread.run_sync(function, *args)


# --- item 1: frames that do not decode ----------------------------------------------------------


def _first_frame_refused(url: str, payload: bytes, opcode: int = TEXT):
    with RawSocket(url) as ws:
        ws.send(frame(opcode, payload))
        return ws.frames_until_close()


async def test_a_deeply_nested_first_frame_is_invalid_with_4001_and_the_server_stays_up(world):
    frames, code = await _in_thread(_first_frame_refused, world.hub.ws_url, DEEP.encode())

    assert [(f.code, "nested too deeply" in f.message) for f in frames] == [("invalid", True)]
    assert code == protocol.CLOSE_UNAUTHORIZED
    await _in_thread(rawws.still_serving, world.hub.ws_url, world.alice.token)


def _answer_on_live_socket(url: str, token: str, payload: bytes):
    with RawSocket(url, token) as ws:
        assert isinstance(ws.receive_frame(), protocol.Ready)
        ws.send(frame(TEXT, payload))
        answer = ws.receive_frame()
        ws.send_text(protocol.encode(protocol.Ping(ref="after")))
        return answer, ws.receive_frame()


@pytest.mark.parametrize(
    "text",
    [DEEP, DEEP + "]" * 1000 + "}", '{"type":"ping","ref":"r1","x":' + "[" * 100_000],
    ids=["unclosed", "closed", "100k-deep"],
)
async def test_a_deeply_nested_frame_on_a_live_socket_is_invalid_and_the_socket_stays(world, text):
    answer, pong = await _in_thread(
        _answer_on_live_socket, world.hub.ws_url, world.alice.token, text.encode()
    )

    assert isinstance(answer, protocol.Error) and answer.code == "invalid"
    assert isinstance(pong, protocol.Pong) and pong.ref == "after"


def test_hub_serve_survives_the_deep_first_frame(tmp_path):
    """The process itself, as `hub serve` runs it: the frame used to end it with status 1."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    environ.update(
        HUB_VAR_DIR=str(tmp_path / "var"),
        HUB_HTTP_PORT="0",
        HUB_WS_PORT="0",
        HUB_JWT_SECRET="s" * 48,
        HUB_ENCRYPTION_KEY="A" * 43 + "=",
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "hub", "serve"],
        cwd=tmp_path,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        banner: dict[str, str] = {}
        assert process.stdout is not None
        while "token" not in banner:
            line = process.stdout.readline()
            assert line, f"hub serve exited with {process.wait(10)} before its banner"
            name, _, value = line.strip().partition(": ")
            banner[name] = value.strip()
        url, token = banner["WebSocket"], banner["token"]

        frames, code = _first_frame_refused(url, DEEP.encode())

        assert [f.code for f in frames] == ["invalid"] and code == protocol.CLOSE_UNAUTHORIZED
        rawws.still_serving(url, token)
        assert process.poll() is None
    finally:
        process.terminate()
        process.wait(30)


# --- item 4: a peer that never answers the close frame ------------------------------------------


SLOTS = {
    "HUB_WS_MAX_CONNECTIONS": "3",
    "HUB_WS_MAX_CONNECTIONS_PER_USER": "3",
    "HUB_WS_CLOSE_TIMEOUT_S": "1",
}


def _refused_and_dropped(url: str) -> int | None:
    with RawSocket(url, "not-a-token") as ws:
        code = ws.close_code()  # and never answered
        ws.wait_for_end()  # the server drops the TCP connection by itself
        return code


@pytest.mark.parametrize("ws_overrides", [SLOTS], ids=["3-slots"])
async def test_refused_sockets_that_ignore_the_close_frame_are_dropped_and_free_their_slots(
    world,
):
    url = world.hub.ws_url
    # As many as the hub takes: before the fix they stayed open and every handshake got 503.
    codes = []
    async with trio.open_nursery() as nursery:
        for _ in range(3):

            async def one() -> None:
                codes.append(await _in_thread(_refused_and_dropped, url))

            nursery.start_soon(one)

    assert codes == [protocol.CLOSE_UNAUTHORIZED] * 3
    await _in_thread(rawws.still_serving, url, world.alice.token)


def _session_closed_and_dropped(url: str, token: str) -> tuple[list, int | None]:
    with RawSocket(url, token) as ws:
        assert isinstance(ws.receive_frame(), protocol.Ready)
        ws.send(frame(BINARY, b'{"type":"ping"}'))
        frames, code = ws.frames_until_close()  # never answered
        ws.wait_for_end()
        return frames, code


async def test_a_binary_frame_is_refused_with_1003_and_an_unanswered_close_still_ends(world):
    frames, code = await _in_thread(
        _session_closed_and_dropped, world.hub.ws_url, world.alice.token
    )

    assert [(f.code, "binary frames are not accepted" in f.message) for f in frames] == [
        ("invalid", True)
    ]
    assert code == protocol.CLOSE_UNSUPPORTED_DATA


def _ping_after_the_close(url: str) -> int | None:
    with RawSocket(url, "not-a-token") as ws:
        code = ws.close_code()
        ws.send(frame(PING, b"late") + frame(TEXT, b"x" * 70_000))  # a pong and a 1009 due
        ws.wait_for_end()
        return code


async def test_a_ping_after_the_servers_close_frame_does_not_end_the_server(world):
    """trio-websocket answered it with a pong wsproto refuses to make after a close frame; the
    LocalProtocolError escaped into the handler nursery and ended the hub (found by the
    raw-frame fuzz below)."""
    code = await _in_thread(_ping_after_the_close, world.hub.ws_url)

    assert code == protocol.CLOSE_UNAUTHORIZED
    await _in_thread(rawws.still_serving, world.hub.ws_url, world.alice.token)


# --- item 8: frames that break RFC 6455 ---------------------------------------------------------

VIOLATIONS = {
    "invalid-utf8": ([frame(TEXT, b'{"type":"ping","ref":"\xff"}')], 1007),
    "continuation-without-start": ([frame(CONTINUATION, b"{}")], 1002),
    "200-byte-ping": ([frame(PING, b"p" * 200)], 1002),
    "unmasked": ([frame(TEXT, b'{"type":"ping"}', masked=False)], 1002),
    "opcode-3": ([frame(0x3, b"x")], 1002),
    "fragmented-ping": ([frame(PING, b"p", fin=False)], 1002),
    "reserved-bit": ([frame(TEXT, b'{"type":"ping"}', rsv=4)], 1002),
    "non-minimal-length": ([frame(TEXT, b'{"type":"ping"}', length_form=16)], 1002),
    "text-inside-a-fragmented-message": (
        [frame(TEXT, b'{"type":', fin=False), frame(TEXT, b'"ping"}')],
        1002,
    ),
    "utf8-cut-at-the-end-of-a-message": ([frame(TEXT, "é".encode()[:1])], 1007),
}


def _violation_answer(url: str, token: str | None, frames: list[bytes]) -> int | None:
    with RawSocket(url, token) as ws:
        if token is not None:
            assert isinstance(ws.receive_frame(), protocol.Ready)
        ws.send(b"".join(frames))
        code = ws.close_code()
        ws.wait_for_end()
        return code


@pytest.mark.parametrize("authenticated", [True, False], ids=["authenticated", "first-frame"])
@pytest.mark.parametrize("case", list(VIOLATIONS))
async def test_a_protocol_violation_gets_its_rfc_6455_close_code(world, case, authenticated):
    frames, expected = VIOLATIONS[case]
    token = world.alice.token if authenticated else None

    code = await _in_thread(_violation_answer, world.hub.ws_url, token, frames)

    assert code == expected
    await _in_thread(rawws.still_serving, world.hub.ws_url, world.alice.token)


# --- item 5: a token refresh to another organization --------------------------------------------


async def test_a_refresh_to_another_organization_ends_the_subscriptions_it_may_not_keep(
    world, alice
):
    thread_id = world.thread.id
    other_org = uuid.uuid4()
    moved = issue_token(
        world.settings, user_id=world.bob.user_id, org_id=other_org, role="owner", name="Bob"
    )
    async with raw_socket(world.hub.ws_url, world.bob.token) as bob:
        assert isinstance(await receive(bob), protocol.Ready)
        await send(bob, protocol.JoinThread(thread_id=thread_id, ref="join"))
        assert (await receive(bob)).ref == "join"

        await send(bob, protocol.Auth(token=moved, ref="moved"))
        lost, ack = await receive(bob), await receive(bob)

        assert (lost.code, lost.thread_id) == ("not_found", thread_id)
        assert isinstance(ack, protocol.Ack) and ack.ref == "moved"
        # The thread's traffic no longer reaches the socket: alice's message is fanned out
        # before her ack, so it would come before bob's pong.
        await alice.typing(thread_id, True)
        await alice.send(thread_id, "for org C only")
        await send(bob, protocol.Ping(ref="p"))
        assert await receive(bob) == protocol.Pong(ref="p")
        # Nor does bob's typing reach the thread's members.
        await send(bob, protocol.TypingIndicator(thread_id=thread_id, is_typing=True, ref="t"))
        refused = await receive(bob)
        assert (refused.code, refused.ref) == ("invalid", "t")


async def test_a_refresh_with_a_new_role_keeps_the_subscriptions_it_may_keep(world, alice):
    thread_id = world.thread.id
    manager = issue_token(
        world.settings, user_id=world.bob.user_id, org_id=world.bob.org_id, role="manager"
    )
    async with raw_socket(world.hub.ws_url, world.bob.token) as bob:
        assert isinstance(await receive(bob), protocol.Ready)
        await send(bob, protocol.JoinThread(thread_id=thread_id, ref="join"))
        assert (await receive(bob)).ref == "join"

        await send(bob, protocol.Auth(token=manager, ref="manager"))
        assert (await receive(bob)).ref == "manager"
        await alice.send(thread_id, "still for bob")

        message = await receive(bob)
        assert isinstance(message, protocol.NewMessage) and message.message.body == "still for bob"


# --- fuzz: first frames, frames on a live socket, raw frames ------------------------------------

FUZZ = hypothesis.settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=list(hypothesis.HealthCheck),
)

json_leaves = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10)
json_values = st.recursive(
    json_leaves,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)


@st.composite
def hostile_payloads(draw) -> bytes:
    """Arbitrary bytes, arbitrary JSON (including frames of real types with wrong fields), or
    JSON nested thousands deep, closed or not."""
    kind = draw(st.sampled_from(["bytes", "json", "frame-like", "deep"]))
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    if kind == "json":
        return protocol._encoder.encode(draw(json_values))
    if kind == "frame-like":
        fields = draw(
            st.dictionaries(
                st.sampled_from(["thread_id", "ref", "token", "body", "seq", "status", "metadata"]),
                json_values,
            )
        )
        fields["type"] = draw(
            st.sampled_from(
                ["auth", "join_thread", "send_message", "update_presence", "mark_read", "nope"]
            )
        )
        return protocol._encoder.encode(fields)
    depth = draw(st.integers(min_value=500, max_value=5000))
    opener = draw(st.sampled_from(["[", '{"a":', '{"type":"ping","x":']))
    closed = draw(st.booleans())
    closer = {"[": "]", '{"a":': "}", '{"type":"ping","x":': "}"}[opener]
    return (opener * depth + ("1" + closer * depth if closed else "")).encode()


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True


async def test_fuzz_no_first_frame_gets_anything_but_its_documented_refusal(world):
    url, token = world.hub.ws_url, world.alice.token
    tried = []

    @FUZZ
    @hypothesis.given(payload=hostile_payloads(), binary=st.booleans())
    def first_frame(payload: bytes, binary: bool) -> None:
        tried.append(payload)
        frames, code = _first_frame_refused(url, payload, BINARY if binary else TEXT)
        if binary:
            assert code == protocol.CLOSE_UNSUPPORTED_DATA
        elif not _is_utf8(payload):
            assert (frames, code) == ([], protocol.CLOSE_INVALID_PAYLOAD)
        else:
            assert code == protocol.CLOSE_UNAUTHORIZED
            assert [f.code for f in frames] in (["invalid"], ["unauthorized"])

    await _in_thread(first_frame)
    await _in_thread(rawws.still_serving, url, token)
    fuzzcount.count("WebSocket frames before authentication", len(tried))
    assert len(tried) >= 300


async def test_fuzz_no_frame_on_a_live_socket_gets_1011_or_internal(world):
    url, token = world.hub.ws_url, world.alice.token
    tried = []

    @FUZZ
    @hypothesis.given(payload=hostile_payloads(), binary=st.booleans())
    def live_frame(payload: bytes, binary: bool) -> None:
        tried.append(payload)
        with RawSocket(url, token) as ws:
            assert isinstance(ws.receive_frame(), protocol.Ready)
            ws.send(frame(BINARY if binary else TEXT, payload))
            if binary or not _is_utf8(payload):
                _, code = ws.frames_until_close()
                assert code == (
                    protocol.CLOSE_UNSUPPORTED_DATA if binary else protocol.CLOSE_INVALID_PAYLOAD
                )
                return
            ws.send_text(protocol.encode(protocol.Ping(ref="fuzz-end")))
            while not isinstance(answer := ws.receive_frame(), protocol.Pong):
                assert not (isinstance(answer, protocol.Error) and answer.code == "internal")
            assert answer.ref == "fuzz-end"

    await _in_thread(live_frame)
    await _in_thread(rawws.still_serving, url, token)
    fuzzcount.count("WebSocket frames after authentication", len(tried))
    assert len(tried) >= 300


CONTROL_CLOSE_CODES = [1000, 1001, 999, 1005, 1015, 2000, 3000, 4000, 5000]


@st.composite
def raw_frames(draw) -> list[dict]:
    """One or more frames with random opcodes, bits, lengths, masks and fragments; the bytes and
    the frame the server must answer as RFC 6455 says."""
    count = draw(st.integers(min_value=1, max_value=4))
    specs = []
    for _ in range(count):
        opcode = draw(st.sampled_from([0, 1, 2, 8, 9, 10]) | st.integers(0, 15))
        payload = draw(st.binary(max_size=200) | st.text(max_size=60).map(str.encode))
        if opcode == CLOSE and draw(st.booleans()):
            code = draw(st.sampled_from(CONTROL_CLOSE_CODES))
            payload = code.to_bytes(2, "big") + payload[:100]
        specs.append(
            dict(
                opcode=opcode,
                payload=payload,
                fin=draw(st.booleans()) if draw(st.integers(0, 3)) == 0 else True,
                rsv=draw(st.integers(0, 7)) if draw(st.integers(0, 5)) == 0 else 0,
                masked=draw(st.integers(0, 7)) != 0,
                length_form=draw(st.sampled_from([None, None, None, 16, 64])),
            )
        )
    return specs


def _expected_close(specs: list[dict]) -> set[int | None]:
    """The close codes RFC 6455 allows for these frames, in order. None: no violation, the
    socket stays open. A binary message that completes first may be closed with 1003 by the hub
    before the reader reaches a later violation, so 1003 is allowed from then on."""
    allowed: set[int | None] = set()
    in_message: int | None = None  # opcode of the fragmented message in progress
    text = b""
    for spec in specs:
        opcode, payload, size = spec["opcode"], spec["payload"], len(spec["payload"])
        minimal = 7 if size < 126 else 16
        control = opcode >= 8
        if opcode not in (0, 1, 2, 8, 9, 10) or (control and not spec["fin"]):
            return allowed | {1002}
        if not spec["masked"] or (control and size > 125) or spec["rsv"]:
            return allowed | {1002}
        if (spec["length_form"] or minimal) != minimal:
            return allowed | {1002}  # a length in more bytes than needed
        if opcode == CLOSE:
            if size == 1:
                return allowed | {1002}
            if size == 0:
                return allowed | {1005}  # no status: answered with an empty close
            code = int.from_bytes(payload[:2], "big")
            registered = code in {reason.value for reason in CloseReason} or code >= 3000
            if not 1000 <= code <= 4999 or code in (1005, 1006, 1015) or not registered:
                return allowed | {1002}
            if not _is_utf8(payload[2:]):
                return allowed | {1007}
            return allowed | {code}  # a valid close is echoed
        if control:
            continue
        if (opcode == CONTINUATION) != (in_message is not None):
            return allowed | {1002}  # a continuation without a start, or a start inside one
        kind = in_message if opcode == CONTINUATION else opcode
        if kind == TEXT:
            text += payload
            try:
                if spec["fin"]:
                    text.decode("utf-8")
                else:
                    codecs.getincrementaldecoder("utf-8")().decode(text, final=False)
            except UnicodeDecodeError:
                return allowed | {1007}
        in_message = None if spec["fin"] else kind
        if spec["fin"]:
            if kind == BINARY:
                allowed.add(protocol.CLOSE_UNSUPPORTED_DATA)
            text = b""
    return allowed | {None}


async def test_fuzz_raw_frames_get_their_rfc_6455_close_code(world):
    url, token = world.hub.ws_url, world.alice.token
    tried = []

    @FUZZ
    @hypothesis.given(specs=raw_frames())
    def raw(specs: list[dict]) -> None:
        tried.append(specs)
        allowed = _expected_close(specs)
        with RawSocket(url, token) as ws:
            assert isinstance(ws.receive_frame(), protocol.Ready)
            ws.send(b"".join(frame(**spec) for spec in specs))
            ws.send(frame(PING, b"fuzz-end"))
            while (got := ws.receive()) is not None:
                opcode, payload = got
                if opcode == CLOSE:
                    code = rawws.close_reason(payload)[0]
                    assert code in allowed, (code, allowed)
                    return
                if opcode == PONG and payload == b"fuzz-end":
                    assert None in allowed, allowed
                    return
                if opcode == TEXT:
                    answer = protocol.decode_server(payload)
                    assert not (isinstance(answer, protocol.Error) and answer.code == "internal")
            # trio-websocket closes the stream on a violation without waiting for a close frame
            # the session's writer is writing at that moment: only then may it be missing.
            assert protocol.CLOSE_UNSUPPORTED_DATA in allowed, ("no close frame", allowed, specs)

    await _in_thread(raw)
    await _in_thread(rawws.still_serving, url, token)
    fuzzcount.count("WebSocket raw frame sequences", len(tried))
    assert len(tried) >= 300
