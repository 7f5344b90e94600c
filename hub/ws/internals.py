"""Every use the hub makes of trio-websocket's undocumented parts, and the check that they are
still there.

Written against trio-websocket 0.12.2, pinned exactly in pyproject.toml. `check_shape` runs when
the WebSocket server starts (hub.ws.server), so `hub serve` stops with one line naming the missing
attribute and the installed version instead of failing on the first socket. The suite runs it
too (tests/realtime/test_internals.py), with the behaviour tests in
tests/realtime/test_transport.py and tests/realtime/test_session_streams.py that fail when
upstream changes what these attributes mean. Nothing else in the hub touches trio-websocket
below its documented API.

The private attributes relied on, exactly:

`WebSocketConnection._stream`
    `FrameWriter` writes already-framed bytes to it (with one non-blocking `os.write` on its
    socket when it is a plain TCP stream); `drop_connection` closes it.
`WebSocketConnection._stream_lock`
    Taken by `FrameWriter` around every write, so the hub's bytes never interleave with the
    pongs and close frames trio-websocket writes itself; `drop_connection` waits on it for a
    close frame being written.
`WebSocketConnection._abort_web_socket()`
    Called by `FrameWriter` when a write fails, to mark the connection closed (1006) as
    trio-websocket's own `_send` does.
`WebSocketConnection._pings`
    `Pings` puts itself there as trio-websocket's `ping()` puts its `trio.Event`; the reader
    task calls `set()` on it when the pong comes.
`WebSocketRequest._connection`, `WebSocketConnection._wsproto`
    `fix_close_handling` wraps the wsproto connection behind a request before it is accepted.

Why each is kept:

- `FrameWriter` and `Pings` are measured gains (docs/performance.md, decision register:
  "Encode-once fan-out, direct socket writes" and "Heartbeats from one timer task"). Writing
  through `send_message` costs a wsproto serialization, a `send_all` and two scheduler
  checkpoints per frame and subscriber; `ping()` waits for its pong, so it needs a waiting task
  per socket, which is what the shared session timer (hub.actors.timers) replaces.
- `fix_close_handling` and `drop_connection` are correctness: RFC 6455 close codes for protocol
  violations, a ping after the close frame that must not end the process, and a close that
  must end the TCP connection within the close timeout. Each says when it may be deleted.
"""

from __future__ import annotations

import inspect
import itertools
import math
import os
import struct
from collections.abc import Callable, Generator, MutableMapping
from typing import Any, NoReturn

import trio
import trio_websocket
from trio_websocket import ConnectionClosed, WebSocketConnection, WebSocketRequest
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import CloseConnection, Event, Ping, Pong, Request

from hub.errors import ConfigError
from hub.frames import ping_frame

WRITTEN_AGAINST = "0.12.2"  # trio-websocket; keep equal to the pin in pyproject.toml


class TrioWebSocketChanged(ConfigError):
    """The installed trio-websocket lacks something this module relies on. A `ConfigError`, so
    `hub serve` reports it as one line and exits 2: the fix is an install, not a code path."""


def check_shape() -> None:
    """Raise `TrioWebSocketChanged` unless every private attribute listed in this module's
    docstring is where it was in trio-websocket 0.12.2, with the type it had.

    The attributes are made by the constructors, so the check builds a connection (over a
    stream that is never used) and a request for it, and looks."""
    stream = _NoStream()
    inner = WSConnection(ConnectionType.SERVER)
    try:
        connection = WebSocketConnection(stream, inner)
        request = WebSocketRequest(connection, Request(host="hub", target="/"))
    except Exception as exc:
        _changed(f"WebSocketConnection(stream, wsproto connection) fails ({exc!r})")
    required: list[tuple[object, str, str, Callable[[Any], bool]]] = [
        (request, "WebSocketRequest._connection", "the connection", lambda v: v is connection),
        (connection, "WebSocketConnection._stream", "the stream", lambda v: v is stream),
        (
            connection,
            "WebSocketConnection._stream_lock",
            "a trio.StrictFIFOLock",
            lambda v: isinstance(v, trio.StrictFIFOLock),
        ),
        (
            connection,
            "WebSocketConnection._wsproto",
            "the wsproto connection",
            lambda v: v is inner,
        ),
        (
            connection,
            "WebSocketConnection._pings",
            "a mapping of ping payloads",
            lambda v: isinstance(v, MutableMapping),
        ),
        (
            connection,
            "WebSocketConnection._abort_web_socket",
            "a coroutine method without arguments",
            _no_argument_coroutine,
        ),
    ]
    for owner, name, expected, holds in required:
        attribute = name.rpartition(".")[2]
        if not hasattr(owner, attribute):
            _changed(f"{name} is missing")
        if not holds(getattr(owner, attribute)):
            _changed(f"{name} is no longer {expected}")


class _NoStream(trio.abc.Stream):
    """The stream of the connection `check_shape` builds: nothing reads or writes it."""

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        raise trio.ClosedResourceError

    async def wait_send_all_might_not_block(self) -> None:
        raise trio.ClosedResourceError

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        return b""

    async def aclose(self) -> None:
        pass


def _no_argument_coroutine(method: Any) -> bool:
    if not inspect.iscoroutinefunction(method):
        return False
    parameters = inspect.signature(method).parameters.values()
    return all(
        p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in parameters
    )


def _changed(what: str) -> NoReturn:
    raise TrioWebSocketChanged(
        f"trio-websocket {trio_websocket.__version__}: {what}, and hub/ws/internals.py relies on "
        f"it as trio-websocket {WRITTEN_AGAINST} has it (install trio-websocket=={WRITTEN_AGAINST}"
        ", or update hub/ws/internals.py)"
    )


# --- direct writes -------------------------------------------------------------------------------


class FrameWriter:
    """Writes already-encoded frames (hub.frames) to one trio-websocket connection.

    `write` sends a whole backlog with one non-blocking `os.write` and only waits (through the
    stream, as trio-websocket would) when the kernel's buffer is full; `write_now` lets any task
    write a frame to an idle socket without waiting at all (the session decides when that keeps
    the order). Both hold the connection's stream lock while writing."""

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


# --- heartbeats ----------------------------------------------------------------------------------

_ping_numbers = itertools.count(1)


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
        self._pings[payload] = self  # type: ignore[assignment]
        return ping_frame(payload)

    def set(self) -> None:
        """Called by trio-websocket's reader task when the pong arrives."""
        self.answered_at = trio.current_time()


# --- closing -------------------------------------------------------------------------------------


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
    connection._wsproto = _CloseHandling(connection._wsproto)  # type: ignore[assignment]


async def drop_connection(ws: WebSocketConnection, timeout_s: float) -> None:
    """End the TCP connection: let a write in progress (a close frame) finish for up to
    `timeout_s`, then close the stream.

    trio-websocket's `aclose()` returns at once when a close reason is already recorded,
    without closing the stream, and its handler then waits for its reader task. That task may
    be stuck writing the answer to a peer's close to a peer that no longer reads, so without
    this the connection (a descriptor and a slot) would stay open for ever. Delete it when
    trio-websocket's `aclose()` closes the stream in that case too (not as of 0.12.2)."""
    with trio.move_on_after(timeout_s):
        async with ws._stream_lock:
            pass
    await trio.aclose_forcefully(ws._stream)
