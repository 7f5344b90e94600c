"""The swarm's bare WebSocket client against a real trio-websocket server on loopback: text both
ways, fragmented and large messages, pings answered, and both close handshakes."""

from __future__ import annotations

import pytest
import trio
from trio_websocket import ConnectionClosed, serve_websocket

from bench.load.wire import WireClosed, WireConnection, WireMessages, WireRejected, _mask


def test_masking_is_its_own_inverse():
    key = b"\x01\x02\x03\x04"
    payload = b"Tent goes up at 3pm" * 7
    assert _mask(_mask(payload, key), key) == payload
    assert _mask(payload, key) != payload


async def echo_server(nursery: trio.Nursery, handler) -> int:
    server = await nursery.start(serve_websocket, handler, "127.0.0.1", 0, None)
    return server.port


async def connect(port: int, resource: str = "/") -> WireMessages:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    connection = WireConnection(stream)
    await connection.handshake(f"127.0.0.1:{port}", resource, [("Authorization", "Bearer x")])
    return WireMessages(connection)


async def test_text_goes_both_ways_whatever_its_size():
    async def echo(request):
        ws = await request.accept()
        try:
            while True:
                await ws.send_message(await ws.get_message())
        except ConnectionClosed:
            pass

    async with trio.open_nursery() as nursery:
        port = await echo_server(nursery, echo)
        client = await connect(port)
        for text in ("hi", "é" * 200, "x" * 70_000):
            await client.send_message(text)
            assert await client.get_message() == text
        await client.aclose()
        with pytest.raises(WireClosed) as closed:
            await client.get_message()
        assert closed.value.code == 1000
        nursery.cancel_scope.cancel()


async def test_pings_are_answered_and_a_server_close_is_reported_with_its_code():
    async def pinger(request):
        ws = await request.accept()
        await ws.ping(b"are you there")  # returns only once the pong came back
        await ws.send_message("pong seen")
        await ws.aclose(4009, "too slow")

    async with trio.open_nursery() as nursery:
        port = await echo_server(nursery, pinger)
        client = await connect(port)
        with trio.fail_after(5):
            assert await client.get_message() == "pong seen"
            with pytest.raises(WireClosed) as closed:
                await client.get_message()
        assert (closed.value.code, closed.value.reason) == (4009, "too slow")
        nursery.cancel_scope.cancel()


async def test_a_refused_upgrade_says_its_status():
    async def refuse(request):
        await request.reject(403, body=b"origin not allowed")

    async with trio.open_nursery() as nursery:
        port = await echo_server(nursery, refuse)
        with pytest.raises(WireRejected) as refused:
            await connect(port)
        assert refused.value.status == 403
        nursery.cancel_scope.cancel()
