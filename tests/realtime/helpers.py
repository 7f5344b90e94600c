"""Raw WebSocket helpers for tests that look below the client: close codes, handshakes."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, open_websocket_url

from hub import protocol


@contextlib.asynccontextmanager
async def raw_socket(
    url: str, token: str | None = None, origin: str | None = None
) -> AsyncIterator[WebSocketConnection]:
    headers = []
    if token is not None:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    async with open_websocket_url(url, extra_headers=headers) as ws:
        yield ws


async def receive(ws: WebSocketConnection, timeout_s: float = 10.0) -> Any:
    with trio.fail_after(timeout_s):
        return protocol.decode_server(await ws.get_message())


async def receive_until(ws: WebSocketConnection, kind: type, timeout_s: float = 10.0) -> Any:
    while True:
        frame = await receive(ws, timeout_s)
        if isinstance(frame, kind):
            return frame


async def close_code(ws: WebSocketConnection, timeout_s: float = 10.0) -> int:
    """Read (and discard) until the server closes; the close code it sent."""
    with trio.fail_after(timeout_s):
        try:
            while True:
                await ws.get_message()
        except ConnectionClosed as exc:
            assert exc.reason is not None
            return exc.reason.code


async def send(ws: WebSocketConnection, frame: Any) -> None:
    await ws.send_message(protocol.encode(frame))
