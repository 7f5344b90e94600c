"""A session's socket over trio-websocket: `hub.actors.session.Socket`, implemented.

The session actor knows nothing of trio-websocket: it reads messages, writes frames that
hub.frames has already encoded, asks for ping frames and closes, through the `Socket` protocol
it declares. This adapter does it with trio-websocket's public API for reading and closing, and
with hub.ws.internals (`FrameWriter`, `Pings`) for the writes and pings that API cannot do
without a wait or a task per frame and socket. trio-websocket's `ConnectionClosed` becomes the
session's `SocketClosed`.
"""

from __future__ import annotations

from trio_websocket import ConnectionClosed, WebSocketConnection

from hub.actors.session import SocketClosed
from hub.ws.internals import FrameWriter, Pings


class Connection:
    """One accepted trio-websocket connection, as a session's `Socket`."""

    __slots__ = ("_pings", "_writer", "_ws", "write_now")

    def __init__(self, ws: WebSocketConnection) -> None:
        self._ws = ws
        self._writer = FrameWriter(ws)
        self._pings = Pings(ws)
        # Fan-out calls this once per frame and subscriber: the writer's own method, bound
        # here, so the adapter adds no call of its own on that path.
        self.write_now = self._writer.write_now

    async def receive(self) -> str | bytes:
        try:
            return await self._ws.get_message()
        except ConnectionClosed:
            raise SocketClosed from None

    async def write(self, data: bytes) -> None:
        try:
            await self._writer.write(data)
        except ConnectionClosed:
            raise SocketClosed from None

    async def close(self, code: int, reason: str) -> None:
        try:
            await self._ws.aclose(code, reason)
        except ConnectionClosed:
            raise SocketClosed from None

    def ping_frame(self) -> bytes:
        return self._pings.frame()

    @property
    def pong_at(self) -> float:
        return self._pings.answered_at
