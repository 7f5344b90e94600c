"""A raw HTTP/1.1 client for tests that must send exact bytes: what a library client would never
write (both framing headers, a body it stops sending), and read back exactly what came.

Requests go out as given; responses are parsed with h11's client side, so a malformed answer
fails the parse instead of passing unnoticed."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

import h11
import trio

RECEIVE = 65536


@dataclass
class WireResponse:
    status: int
    headers: dict[bytes, bytes]
    body: bytes

    @property
    def closes(self) -> bool:
        return self.headers.get(b"connection", b"").lower() == b"close"


class Malformed(Exception):
    """The server's bytes were not a well-formed HTTP/1.1 response."""


class Connection:
    """One TCP connection to the REST port; `await Connection.open(hub.rest_url)`."""

    def __init__(self, stream: trio.SocketStream, origin: str) -> None:
        self.stream = stream
        self.origin = origin
        self._buffer = b""
        self.eof = False

    @classmethod
    async def open(cls, url: str) -> Connection:
        parts = urlsplit(url)
        stream = await trio.open_tcp_stream(parts.hostname, parts.port)
        return cls(stream, f"{parts.hostname}:{parts.port}")

    async def aclose(self) -> None:
        await self.stream.aclose()

    async def send(self, data: bytes) -> bool:
        """Send all of `data`; False if the server had closed the connection."""
        try:
            await self.stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return False
        return True

    async def _fill(self) -> bool:
        if self.eof:
            return False
        try:
            data = await self.stream.receive_some(RECEIVE)
        except trio.BrokenResourceError:  # reset by the server
            data = b""
        if not data:
            self.eof = True
            return False
        self._buffer += data
        return True

    async def response(self, method: bytes = b"GET") -> WireResponse | None:
        """The next final response, or None if the server closed before sending a byte of one
        (interim 1xx responses aside)."""
        parser = h11.Connection(h11.CLIENT)
        parser.send(h11.Request(method=method, target="/", headers=[("Host", self.origin)]))
        parser.send(h11.EndOfMessage())
        started = bool(self._buffer)
        if started:  # (h11 reads empty data as the end of the stream)
            parser.receive_data(self._buffer)
        self._buffer = b""
        head: h11.Response | None = None
        body = b""
        while True:
            try:
                event = parser.next_event()
            except h11.RemoteProtocolError as error:
                raise Malformed(str(error)) from error
            if event is h11.NEED_DATA:
                if await self._fill():
                    started = True
                    parser.receive_data(self._buffer)
                    self._buffer = b""
                    continue
                if not started or (head is None and not parser.trailing_data[0]):
                    return None  # closed before a final response began (after 100s at most)
                parser.receive_data(b"")
                continue
            if isinstance(event, h11.InformationalResponse):
                continue
            if isinstance(event, h11.Response):
                head = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                assert head is not None
                self._buffer = parser.trailing_data[0]
                headers = {bytes(name).lower(): bytes(value) for name, value in head.headers}
                return WireResponse(head.status_code, headers, body)
            elif isinstance(event, h11.ConnectionClosed):
                if not started:
                    return None
                raise Malformed("the connection closed inside a response")

    async def closed_by_server(self) -> bool:
        """Wait for the server to close (EOF or reset); False if it sent more bytes instead."""
        if self._buffer:
            return False
        return not await self._fill()


def request(
    method: str, path: str, headers: list[tuple[str, str]] = (), body: bytes = b""
) -> bytes:
    """The exact bytes of one request head (with Host) and its body."""
    lines = [f"{method} {path} HTTP/1.1", "Host: hub.test"]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def chunked(body: bytes, size: int = 65536) -> bytes:
    """`body` in chunked transfer coding, ending with the zero-length chunk."""
    parts = [
        b"%x\r\n%s\r\n" % (len(body[i : i + size]), body[i : i + size])
        for i in range(0, len(body), size)
    ]
    return b"".join(parts) + b"0\r\n\r\n"
