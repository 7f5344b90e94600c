"""A bare RFC 6455 client connection on a trio SocketStream, for the swarm's hot path.

Why it exists: measured on this 2-core machine, a swarm process built on trio-websocket spends
its core in wsproto's event machinery and trio-websocket's per-connection reader task and
message channel, and tops out near 2,000 received frames per second — below the 4,500 copies per
second of the issue's target, so the client, not the server, would set the figures. This class
does only what the swarm needs: the upgrade handshake, unfragmented or fragmented text frames in,
masked text frames out, answering pings, and the close handshake. It reads with one
`receive_some` per burst and parses every complete frame in the buffer, with no task, channel or
event object per frame. `--client trio-websocket` keeps the library client for comparison.

It is not a general WebSocket client: no extensions, no subprotocols, no TLS.
"""

from __future__ import annotations

import base64
import os
import struct
from collections import deque

import trio

OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
RECEIVE_BYTES = 65536
MAX_HEADER_BYTES = 16384


class WireClosed(Exception):
    """The connection is closed; `code` is the peer's close code (None: no close frame)."""

    def __init__(self, code: int | None, reason: str = "") -> None:
        super().__init__(f"closed {code} {reason}".strip())
        self.code = code
        self.reason = reason


class WireRejected(Exception):
    """The server answered the upgrade with something other than 101."""

    def __init__(self, status: int) -> None:
        super().__init__(f"handshake answered {status}")
        self.status = status


def _mask(payload: bytes, key: bytes) -> bytes:
    """XOR with the 4-byte key, as one big-integer operation rather than a loop over bytes."""
    if not payload:
        return payload
    repeated = (key * (len(payload) // 4 + 1))[: len(payload)]
    value = int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")
    return value.to_bytes(len(payload), "big")


def encode_frame(opcode: int, payload: bytes) -> bytes:
    """A masked client frame (RFC 6455 §5.3: every client frame is masked)."""
    key = os.urandom(4)
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
    elif length < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
    return header + key + _mask(payload, key)


class WireConnection:
    """One client WebSocket. One task receives (`receive`); any task may send."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self._stream = stream
        self._buffer = bytearray()
        self._send_lock = trio.Lock()
        self._fragments: list[bytes] = []
        self.closed: WireClosed | None = None
        self.closing = False  # we sent a close frame

    async def handshake(self, host: str, resource: str, headers: list[tuple[str, str]]) -> None:
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {resource} HTTP/1.1",
            f"Host: {host}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
            *(f"{name}: {value}" for name, value in headers),
        ]
        await self._stream.send_all(("\r\n".join(lines) + "\r\n\r\n").encode())
        while (end := self._buffer.find(b"\r\n\r\n")) < 0:
            if len(self._buffer) > MAX_HEADER_BYTES:
                raise WireRejected(0)
            data = await self._stream.receive_some(RECEIVE_BYTES)
            if not data:
                raise WireClosed(None, "closed during the handshake")
            self._buffer += data
        head = bytes(self._buffer[:end]).decode("latin-1")
        del self._buffer[: end + 4]
        status = int(head.split(" ", 2)[1])
        if status != 101:
            raise WireRejected(status)

    async def receive(self) -> list[str]:
        """The text messages that arrived with the next burst of bytes (at least one)."""
        messages: list[str] = []
        while not messages:
            if self.closed is not None:
                raise self.closed
            await self._parse(messages)
            if messages or self.closed is not None:
                break
            data = await self._stream.receive_some(RECEIVE_BYTES)
            if not data:
                self.closed = WireClosed(None, "connection lost")
                break
            self._buffer += data
        if not messages and self.closed is not None:
            raise self.closed
        return messages

    async def _parse(self, messages: list[str]) -> None:
        buffer = self._buffer
        offset = 0
        while True:
            if len(buffer) - offset < 2:
                break
            first, second = buffer[offset], buffer[offset + 1]
            length = second & 0x7F
            position = offset + 2
            if length == 126:
                if len(buffer) - position < 2:
                    break
                (length,) = struct.unpack_from("!H", buffer, position)
                position += 2
            elif length == 127:
                if len(buffer) - position < 8:
                    break
                (length,) = struct.unpack_from("!Q", buffer, position)
                position += 8
            if second & 0x80:  # servers never mask; refuse rather than guess
                raise WireClosed(1002, "masked frame from the server")
            if len(buffer) - position < length:
                break
            payload = bytes(buffer[position : position + length])
            offset = position + length
            opcode, final = first & 0x0F, first & 0x80
            if opcode in (OP_TEXT, OP_BINARY, OP_CONTINUATION):
                if final and not self._fragments:
                    messages.append(payload.decode())
                else:
                    self._fragments.append(payload)
                    if final:
                        messages.append(b"".join(self._fragments).decode())
                        self._fragments = []
            elif opcode == OP_PING:
                await self._send(OP_PONG, payload)
            elif opcode == OP_CLOSE:
                code = struct.unpack_from("!H", payload)[0] if len(payload) >= 2 else None
                reason = payload[2:].decode(errors="replace")
                if self.closed is None:
                    self.closed = WireClosed(code, reason)
                    if self.closing:
                        break  # the answer to our own close
                    # Answer the close (RFC 6455 §5.5.1), then the server closes TCP.
                    try:
                        await self._send(OP_CLOSE, payload[:2])
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        pass
                break
        del buffer[:offset]

    async def send_text(self, text: str) -> None:
        if self.closed is not None:
            raise self.closed
        try:
            await self._send(OP_TEXT, text.encode())
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self.closed = self.closed or WireClosed(None, "connection lost")
            raise self.closed from None

    async def _send(self, opcode: int, payload: bytes) -> None:
        async with self._send_lock:
            await self._stream.send_all(encode_frame(opcode, payload))

    async def send_close(self, code: int = 1000, reason: str = "") -> None:
        """Start the close handshake; the receiving task sees the server's close frame (as
        WireClosed) and then the caller closes TCP."""
        if self.closed is not None or self.closing:
            return
        self.closing = True
        try:
            await self._send(OP_CLOSE, struct.pack("!H", code) + reason.encode())
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self.closed = WireClosed(None, "connection lost")


class WireMessages:
    """The three calls the swarm makes of a trio-websocket connection (`get_message`,
    `send_message`, `aclose`), over a WireConnection."""

    def __init__(self, connection: WireConnection) -> None:
        self.connection = connection
        self._pending: deque[str] = deque()

    async def get_message(self) -> str:
        while not self._pending:
            self._pending.extend(await self.connection.receive())
        return self._pending.popleft()

    async def send_message(self, text: str) -> None:
        await self.connection.send_text(text)

    async def aclose(self, code: int = 1000, reason: str = "") -> None:
        await self.connection.send_close(code, reason)
