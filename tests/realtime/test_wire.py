"""The frame bytes the hub encodes once per event must be exactly what a WebSocket library
would have sent: checked against wsproto's own server-side encoding, and read back by it."""

from __future__ import annotations

import socket as stdlib_socket
from types import SimpleNamespace

import pytest
import trio
from trio_websocket import ConnectionClosed
from wsproto.connection import Connection, ConnectionType
from wsproto.events import TextMessage
from wsproto.frame_protocol import FrameProtocol

from hub import protocol
from hub.frames import event_frame, frame_payload, text_frame
from hub.ws.internals import FrameWriter


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65_535, 65_536, 200_000])
def test_text_frames_match_wsproto_at_every_length_boundary(size):
    payload = ("é" * (size // 2) + "x" * (size % 2)).encode()
    server = FrameProtocol(client=False, extensions=[])
    assert text_frame(payload) == server.send_data(payload.decode(), fin=True)
    assert frame_payload(text_frame(payload)) == payload


def test_a_client_decodes_an_encoded_event():
    event = protocol.Pong(ref="r1")
    client = Connection(ConnectionType.CLIENT)
    client.receive_data(event_frame(event))
    (received,) = list(client.events())
    assert isinstance(received, TextMessage) and received.message_finished
    assert protocol.decode_server(received.data) == event


async def test_a_writer_never_writes_to_a_descriptor_its_stream_no_longer_owns():
    """After the stream is closed, its descriptor number may be handed to a new connection; a
    late write must fail as closed instead of landing on that other connection."""
    ours, peer = stdlib_socket.socketpair()
    stream = trio.SocketStream(trio.socket.from_stdlib_socket(ours))
    aborted = []

    async def abort() -> None:
        aborted.append(True)

    ws = SimpleNamespace(
        _stream=stream, _stream_lock=trio.StrictFIFOLock(), closed=None, _abort_web_socket=abort
    )
    writer = FrameWriter(ws)  # type: ignore[arg-type]
    await writer.write(text_frame(b"first"))
    assert frame_payload(peer.recv(100)) == b"first"

    number = ours.fileno()
    await stream.aclose()
    other, other_peer = stdlib_socket.socketpair()
    assert number in (other.fileno(), other_peer.fileno())  # the number was handed out again
    with pytest.raises(ConnectionClosed):
        await writer.write(text_frame(b"late"))
    for end in (other, other_peer):
        end.setblocking(False)
        with pytest.raises(BlockingIOError):
            end.recv(100)  # nothing arrived on the connection that took the number
    assert aborted == [True]
    for s in (peer, other, other_peer):
        s.close()


def _writer_on_socketpair() -> tuple[FrameWriter, trio.SocketStream, stdlib_socket.socket]:
    ours, peer = stdlib_socket.socketpair()
    stream = trio.SocketStream(trio.socket.from_stdlib_socket(ours))

    async def abort() -> None:
        pass

    ws = SimpleNamespace(
        _stream=stream, _stream_lock=trio.StrictFIFOLock(), closed=None, _abort_web_socket=abort
    )
    return FrameWriter(ws), stream, peer  # type: ignore[arg-type]


async def test_an_immediate_write_takes_what_the_kernel_takes_and_never_cuts_into_a_write():
    writer, stream, peer = _writer_on_socketpair()
    assert writer.write_now(text_frame(b"now")) == len(text_frame(b"now"))
    assert frame_payload(peer.recv(100)) == b"now"

    # While another write holds the stream, nothing is written from the side.
    lock = writer._lock
    await lock.acquire()
    assert writer.write_now(text_frame(b"not now")) == 0
    lock.release()

    # A full socket buffer takes part of a frame, then nothing; the caller owes the rest.
    big = text_frame(b"x" * 4_000_000)
    written = writer.write_now(big)
    assert 0 < written < len(big)
    assert writer.write_now(text_frame(b"more")) == 0

    # Closed: the descriptor number may belong to someone else now, so nothing is written.
    await stream.aclose()
    assert writer.write_now(text_frame(b"late")) == 0
    peer.close()
