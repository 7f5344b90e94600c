"""The frame bytes the hub encodes once per event must be exactly what a WebSocket library
would have sent: checked against wsproto's own server-side encoding, and read back by it."""

from __future__ import annotations

import pytest
from wsproto.connection import Connection, ConnectionType
from wsproto.events import TextMessage
from wsproto.frame_protocol import FrameProtocol

from hub import protocol
from hub.ws.wire import event_frame, frame_payload, text_frame


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
