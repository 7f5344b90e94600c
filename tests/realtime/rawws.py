"""A WebSocket client made of bytes, for what a well-behaved library refuses to send.

Blocking sockets on purpose: hypothesis runs its examples synchronously, so the fuzz tests call
these from a worker thread (`trio.to_thread.run_sync`) while the hub serves in the Trio thread.
Every read has a socket timeout as a guard only; the tests wait for what the server sends.
"""

from __future__ import annotations

import base64
import os
import socket
import struct
from urllib.parse import urlsplit

from hub import protocol

TEXT, BINARY, CLOSE, PING, PONG, CONTINUATION = 0x1, 0x2, 0x8, 0x9, 0xA, 0x0


def frame(
    opcode: int,
    payload: bytes,
    *,
    fin: bool = True,
    rsv: int = 0,
    masked: bool = True,
    length_form: int | None = None,
) -> bytes:
    """One client frame; `length_form` (7, 16 or 64 bits) forces a length encoding, minimal
    or not."""
    size = len(payload)
    first = (0x80 if fin else 0) | (rsv & 0x7) << 4 | opcode & 0xF
    form = length_form or (7 if size < 126 else 16 if size < 1 << 16 else 64)
    mask_bit = 0x80 if masked else 0
    if form == 7:
        header = bytes((first, mask_bit | size))
    elif form == 16:
        header = struct.pack("!BBH", first, mask_bit | 126, size)
    else:
        header = struct.pack("!BBQ", first, mask_bit | 127, size)
    if not masked:
        return header + payload
    key = os.urandom(4)
    return header + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


class RawSocket:
    """A socket past the WebSocket upgrade (or refused at it: see `status`)."""

    def __init__(self, url: str, token: str | None = None, timeout_s: float = 10.0) -> None:
        parts = urlsplit(url)
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=timeout_s)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {parts.path} HTTP/1.1",
            f"Host: {parts.hostname}:{parts.port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
        ]
        if token is not None:
            lines.append(f"Authorization: Bearer {token}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self._buffer = b""
        while b"\r\n\r\n" not in self._buffer:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed during the handshake")
            self._buffer += chunk
        head, self._buffer = self._buffer.split(b"\r\n\r\n", 1)
        self.status = int(head.split(b" ", 2)[1])

    def __enter__(self) -> RawSocket:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may close before it has read everything; what it sent is read

    def send_text(self, text: str) -> None:
        self.send(frame(TEXT, text.encode()))

    def receive(self) -> tuple[int, bytes] | None:
        """The next frame from the server (opcode, payload), or None at the end of the TCP
        connection."""
        header = self._read(2)
        if header is None:
            return None
        size = header[1] & 0x7F
        if size == 126:
            extended = self._read(2)
            size = struct.unpack("!H", extended)[0] if extended else 0
        elif size == 127:
            extended = self._read(8)
            size = struct.unpack("!Q", extended)[0] if extended else 0
        payload = self._read(size) if size else b""
        if payload is None:
            return None
        return header[0] & 0x0F, payload

    def receive_frame(self) -> protocol.ServerFrame:
        """The next text frame, decoded (pings are answered, other control frames skipped)."""
        while True:
            got = self.receive()
            assert got is not None, "the server closed the connection"
            opcode, payload = got
            if opcode == TEXT:
                return protocol.decode_server(payload)
            if opcode == PING:
                self.send(frame(PONG, payload))
            assert opcode != CLOSE, f"closed: {close_reason(payload)}"

    def close_code(self) -> int | None:
        """Read until the server's close frame: its code (None when the TCP connection ended
        without one). The close frame is deliberately not answered."""
        while (got := self.receive()) is not None:
            opcode, payload = got
            if opcode == CLOSE:
                return close_reason(payload)[0]
        return None

    def frames_until_close(self) -> tuple[list[protocol.ServerFrame], int | None]:
        """Every text frame up to the close, and the close code (None: no close frame)."""
        frames: list[protocol.ServerFrame] = []
        while (got := self.receive()) is not None:
            opcode, payload = got
            if opcode == CLOSE:
                return frames, close_reason(payload)[0]
            if opcode == TEXT:
                frames.append(protocol.decode_server(payload))
        return frames, None

    def wait_for_end(self) -> None:
        """Read (and discard) until the server ends the TCP connection."""
        while self.receive() is not None:
            pass

    def _read(self, count: int) -> bytes | None:
        while len(self._buffer) < count:
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                return None
            self._buffer += chunk
        data, self._buffer = self._buffer[:count], self._buffer[count:]
        return data


def close_reason(payload: bytes) -> tuple[int | None, str]:
    if len(payload) < 2:
        return 1005, ""  # RFC 6455 7.1.5: a close without a status code counts as 1005
    return struct.unpack("!H", payload[:2])[0], payload[2:].decode("utf-8", "replace")


def authenticated(url: str, token: str) -> RawSocket:
    """A raw socket that authenticated with a first auth frame and got `ready`."""
    ws = RawSocket(url)
    assert ws.status == 101
    ws.send_text(protocol.encode(protocol.Auth(token=token)))
    assert isinstance(ws.receive_frame(), protocol.Ready)
    return ws


def still_serving(url: str, token: str) -> None:
    """A fresh socket authenticates and gets its pong: the server is up and answering."""
    with authenticated(url, token) as ws:
        ws.send_text(protocol.encode(protocol.Ping(ref="alive")))
        pong = ws.receive_frame()
        assert isinstance(pong, protocol.Pong) and pong.ref == "alive"
