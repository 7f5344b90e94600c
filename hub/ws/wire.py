"""Server frames as bytes on the wire, encoded once and written straight to the socket.

Fan-out sends the same event to every subscriber of a thread. A server-to-client WebSocket frame
is not masked and this server negotiates no extension, so the bytes of a text frame depend on
the payload alone: the thread actor encodes an event once (`event_frame`) and those same bytes
go on every subscriber's socket.

Writing through trio-websocket's `send_message` cost, per frame and per subscriber, a wsproto
serialization and a `send_all` with its two scheduler checkpoints, a large share of the hub's CPU
under fan-out (docs/performance.md, decision register: "Encode-once fan-out, direct socket
writes"). `FrameWriter` instead writes a session's whole backlog with
one non-blocking `os.write` and only waits (through the stream, as trio-websocket would) when the
kernel's buffer is full; `write_now` lets any task write a frame to an idle socket without
waiting at all (the session decides when that keeps the order). Both take trio-websocket's
stream lock while writing, so their bytes never interleave with the pongs and close frame
trio-websocket writes itself. That needs three
attributes trio-websocket does not document (`_stream`, `_stream_lock` and, for a failed write,
`_abort_web_socket`); pyproject pins the minor version they were read from, and every realtime
test goes through this path.

Heartbeat pings go out the same way (`ping_frame`, written at once or queued first).
trio-websocket's documented `ping()` cannot be used for them: it waits for the pong, so it needs
a waiting task per socket, and those tasks are what the shared session timer (hub.actors.timers)
replaces. `Pings` puts itself where `ping()` would put its `trio.Event`: in `_pings`, which
trio-websocket's reader task consults on every pong. That is a fourth undocumented attribute,
read from the same pinned version.

Two more workarounds for how trio-websocket 0.12 ends connections live here, each in one small
function named for its problem: `fix_close_handling` (a frame that breaks RFC 6455 must get a
1002 or 1007 close frame before the TCP connection goes, and a ping that arrives after the
server's close frame must not end the process) and `drop_connection` (a close must end the TCP
connection within the close timeout, whatever the peer does). They touch three more
undocumented attributes of the same pinned version (`WebSocketRequest._connection`,
`WebSocketConnection._wsproto`, and `_stream`/`_stream_lock` again);
tests/realtime/test_transport.py fails if their shape changes.
"""

from __future__ import annotations

import itertools
import math
import os
import struct
from collections.abc import Generator
from typing import Any

import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, WebSocketRequest
from wsproto import WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import CloseConnection, Event, Ping, Pong

from hub import protocol

_TEXT_FIN = 0x81
_PING_FIN = 0x89
_ping_numbers = itertools.count(1)


def text_frame(payload: bytes) -> bytes:
    """A final, unmasked text frame carrying `payload` (UTF-8 JSON)."""
    size = len(payload)
    if size < 126:
        header = bytes((_TEXT_FIN, size))
    elif size < 1 << 16:
        header = struct.pack("!BBH", _TEXT_FIN, 126, size)
    else:
        header = struct.pack("!BBQ", _TEXT_FIN, 127, size)
    return header + payload


def ping_frame(payload: bytes) -> bytes:
    """An unmasked ping frame (RFC 6455 5.5.2), for a writer that owns the socket's bytes: a
    control frame's payload is at most 125 bytes."""
    if len(payload) > 125:
        raise ValueError("a ping payload is at most 125 bytes")
    return bytes((_PING_FIN, len(payload))) + payload


class Pings:
    """Pings for one connection whose pongs trio-websocket's reader task reports here.

    `WebSocketConnection.ping()` keeps `payload -> trio.Event` in the connection's `_pings` and
    waits on the event. On each pong, the reader task calls `set()` on the entry for that payload
    and on those of any earlier pings the peer skipped, then drops them. This object stands in
    for that event: `set()` records when the pong came, and nothing waits. At most one ping of
    ours stays registered. One the peer never answered is dropped when the next one is made, so
    `_pings` stays bounded even for a peer that talks but never pongs."""

    __slots__ = ("_payload", "_pings", "answered_at")

    def __init__(self, ws: WebSocketConnection) -> None:
        self._pings = ws._pings
        self._payload: bytes | None = None
        self.answered_at = -math.inf  # Trio time of the last pong

    def frame(self) -> bytes:
        """A new ping frame to write. Its pong will be noted in `answered_at`."""
        if self._payload is not None:
            self._pings.pop(self._payload, None)
        payload = self._payload = struct.pack("!Q", next(_ping_numbers))
        self._pings[payload] = self
        return ping_frame(payload)

    def set(self) -> None:
        """Called by trio-websocket's reader task when the pong arrives."""
        self.answered_at = trio.current_time()


def event_frame(event: protocol.ServerFrame) -> bytes:
    """An event as the bytes every subscriber's socket receives."""
    return text_frame(protocol.encode_bytes(event))


def frame_payload(frame: bytes) -> bytes:
    """The payload of a frame made by `text_frame` (for tests and tools that read them back)."""
    size = frame[1] & 0x7F
    offset = 2 if size < 126 else 4 if size == 126 else 10
    return frame[offset:]


class FrameWriter:
    """Writes already-encoded frames to one trio-websocket connection."""

    def __init__(self, ws: WebSocketConnection) -> None:
        self._ws = ws
        self._stream = ws._stream
        self._lock: trio.StrictFIFOLock = ws._stream_lock
        # A plain TCP stream is written through its descriptor; anything else (TLS, the
        # in-memory streams of tests) only through the stream.
        self._socket = getattr(self._stream, "socket", None)

    def write_now(self, data: bytes) -> int:
        """Write what the kernel takes of `data` at once, from any task, without waiting: the
        number of bytes written. 0 when another write holds the stream, the socket buffer is
        full, the connection is closed or broken, or the stream is not a plain TCP socket. The
        caller owes the rest to `write`, ahead of anything else; a broken socket is left for
        `write` to find and report."""
        if self._socket is None or self._ws.closed is not None or self._lock.locked():
            return 0
        try:
            self._lock.acquire_nowait()
        except trio.WouldBlock:
            return 0
        try:
            fd = self._socket.fileno()
            if fd < 0:
                return 0
            try:
                return os.write(fd, data)
            except OSError:
                return 0
        finally:
            self._lock.release()

    async def write(self, data: bytes) -> None:
        """Write `data` whole, or raise ConnectionClosed (the connection is then aborted)."""
        if self._ws.closed is not None:
            raise ConnectionClosed(self._ws.closed)
        try:
            self._lock.acquire_nowait()
        except trio.WouldBlock:
            await self._lock.acquire()
        try:
            # A close frame may have gone out while this task waited for the lock.
            if self._ws.closed is not None:
                raise ConnectionClosed(self._ws.closed)
            written = 0
            # Looked up at each write, never kept: once the stream is closed its number may
            # already belong to another connection, and a closed socket answers -1.
            fd = -1 if self._socket is None else self._socket.fileno()
            if fd >= 0:
                try:
                    written = os.write(fd, data)
                except BlockingIOError:
                    pass
            if written < len(data):
                await self._stream.send_all(memoryview(data)[written:])
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError):
            await self._ws._abort_web_socket()
            raise ConnectionClosed(self._ws.closed) from None
        finally:
            self._lock.release()


class _CloseHandling:
    """A wsproto `WSConnection` with two of trio-websocket 0.12's closing bugs worked around.

    1. A protocol violation goes unanswered. When a peer's frame breaks RFC 6455, wsproto
       yields a `CloseConnection` with the code to send (1002, or 1007 for bad UTF-8) but leaves
       the connection OPEN: wsproto's contract is that the application answers every
       CloseConnection. trio-websocket answers a close only in state REMOTE_CLOSING (that of a
       close the peer sent; `_handle_close_connection_event`), so it dropped the TCP connection
       without a close frame. This wrapper reports such a close as REMOTE_CLOSING until it is
       answered; trio-websocket then sends it and closes as it does for a peer's close.
    2. A late control frame kills the server. trio-websocket's reader task answers every ping
       with a pong (and an oversized message with a 1009 close) without looking at the state;
       once the close handshake has started, wsproto refuses to make those frames and raises
       LocalProtocolError, which escapes the reader task into the handler nursery every
       connection shares, ending the process. A peer had only to send a ping after the server's
       close frame (say after a 4001). Here such a frame becomes no bytes at all: after a close
       frame nothing more may be sent (RFC 6455 5.5.1).

    Everything else goes straight to wsproto's public API. Delete it when trio-websocket handles
    both itself (neither is fixed as of 0.12.2)."""

    def __init__(self, inner: WSConnection) -> None:
        self._inner = inner
        self._violation = False

    @property
    def state(self) -> ConnectionState:
        state = self._inner.state
        if self._violation and state is ConnectionState.OPEN:
            return ConnectionState.REMOTE_CLOSING
        return state

    def events(self) -> Generator[Event, None, None]:
        for event in self._inner.events():
            if isinstance(event, CloseConnection) and self._inner.state is ConnectionState.OPEN:
                # A peer's own close frame moves wsproto to REMOTE_CLOSING before it is
                # yielded; one yielded in OPEN is wsproto's verdict on a broken frame.
                self._violation = True
            yield event

    def send(self, event: Event) -> bytes:
        if isinstance(event, Ping | Pong | CloseConnection) and self._inner.state in _CLOSED:
            return b""
        return self._inner.send(event)

    def receive_data(self, data: bytes | None) -> None:
        self._inner.receive_data(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


_CLOSED = (ConnectionState.LOCAL_CLOSING, ConnectionState.CLOSED)


def fix_close_handling(request: WebSocketRequest) -> None:
    """Put `_CloseHandling` under the connection behind `request`: protocol violations get
    their close code (1002 or 1007) before the TCP connection goes, and a ping after the close
    frame cannot end the server.

    Called before `accept()`, so no frame can be parsed before the wrapper is in place."""
    connection = request._connection
    connection._wsproto = _CloseHandling(connection._wsproto)


async def drop_connection(ws: WebSocketConnection, timeout_s: float) -> None:
    """End the TCP connection: let a write in progress (a close frame) finish for up to
    `timeout_s`, then close the stream.

    trio-websocket's `aclose()` returns at once when a close reason is already recorded,
    without closing the stream, and its handler then waits for its reader task. That task may
    be stuck writing the answer to a peer's close to a peer that no longer reads, so without
    this the connection (a descriptor and a slot) would stay open for ever."""
    with trio.move_on_after(timeout_s):
        async with ws._stream_lock:
            pass
    await trio.aclose_forcefully(ws._stream)
