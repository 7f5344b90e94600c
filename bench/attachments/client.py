"""The bench's HTTP/1.1 client: h11 over a Trio socket, one request per connection, bodies
streamed both ways.

An upload's body is read from its source file a piece at a time while it is sent (the file was
just written, so it is in the page cache, and a read of a cached piece is far shorter than the
send that follows it); a download is counted as it arrives and dropped, so the client never
holds a file. The time of an exchange runs from the connect to the response's last byte.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import h11
import trio

PIECE = 256 * 1024  # bytes read from the source file and handed to the socket at a time
RECEIVE = 256 * 1024
KEEP_AT_MOST = 64 * 1024  # of a response body (the JSON of an upload, an error); more is counted


class ExchangeFailed(Exception):
    pass


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes  # the first KEEP_AT_MOST bytes at most
    received: int  # body bytes received
    elapsed_s: float  # connect to the response's last byte


async def upload(
    host: str,
    port: int,
    base: str,
    token: str,
    thread_id: str,
    source: Path,
    size: int,
    *,
    filename: str,
    content_type: str,
) -> Answer:
    """POST the file `source` (of `size` bytes) as a thread's attachment, its body streamed
    from the file."""
    target = f"{base}/threads/{thread_id}/attachments?filename={quote(filename)}"
    headers = [
        ("Content-Type", content_type),
        ("Content-Length", str(size)),
    ]
    return await exchange(host, port, "POST", target, token, headers, _pieces(source))


async def download(host: str, port: int, base: str, token: str, attachment_id: str) -> Answer:
    """GET a whole attachment, counting its bytes without keeping them."""
    return await exchange(host, port, "GET", f"{base}/attachments/{attachment_id}", token, [])


async def exchange(
    host: str,
    port: int,
    method: str,
    target: str,
    token: str,
    headers: list[tuple[str, str]],
    body: Iterable[bytes] = (),
) -> Answer:
    began = time.perf_counter()
    stream = await trio.open_tcp_stream(host, port)
    conn = h11.Connection(h11.CLIENT)
    request = h11.Request(
        method=method,
        target=target,
        headers=[
            ("Host", f"{host}:{port}"),
            ("Authorization", f"Bearer {token}"),
            ("Connection", "close"),
            *headers,
        ],
    )
    async with stream:
        try:
            await stream.send_all(conn.send(request))
            for piece in body:
                for part in conn.send_with_data_passthrough(h11.Data(data=piece)):
                    await stream.send_all(part)
            await stream.send_all(conn.send(h11.EndOfMessage()))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the hub answered before the body was all sent, and closed: read its answer
        status, answer_headers, kept, received = await _response(stream, conn, method, target)
    return Answer(status, answer_headers, bytes(kept), received, time.perf_counter() - began)


async def _response(
    stream: trio.SocketStream, conn: h11.Connection, method: str, target: str
) -> tuple[int, dict[str, str], bytearray, int]:
    status = 0
    headers: dict[str, str] = {}
    kept = bytearray()
    received = 0
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            try:
                data = await stream.receive_some(RECEIVE)
            except trio.BrokenResourceError:
                data = b""
            conn.receive_data(data)  # b"" is the end of the stream
        elif isinstance(event, h11.Response):
            status = event.status_code
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in event.headers}
        elif isinstance(event, h11.Data):
            received += len(event.data)
            if len(kept) < KEEP_AT_MOST:
                kept += event.data[: KEEP_AT_MOST - len(kept)]
        elif isinstance(event, h11.EndOfMessage):
            return status, headers, kept, received
        elif isinstance(event, h11.ConnectionClosed):
            raise ExchangeFailed(f"{method} {target}: the hub closed without a whole answer")


def _pieces(source: Path) -> Iterator[bytes]:
    with source.open("rb") as handle:
        while piece := handle.read(PIECE):
            yield piece
