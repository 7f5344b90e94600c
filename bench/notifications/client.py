"""The bench's REST client: one keep-alive HTTP/1.1 connection (h11 over a Trio socket) that
sends JSON and keeps the whole answer.

A connection per request would add a TCP handshake and a Hypercorn connection set-up to every
message and blur what the bench compares, so each posting worker keeps one connection open for
the whole run, as a real client would. A reused connection that the hub closed while it was
idle fails before any answer; that one request is sent again on a fresh connection (a message
carries its `client_msg_id`, so even a repeat that had been stored would be answered as a
duplicate, not stored twice).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import h11
import trio

RECEIVE = 64 * 1024


class ExchangeFailed(Exception):
    pass


@dataclass
class Answer:
    status: int
    body: bytes
    elapsed_s: float  # from sending the request to the answer's last byte

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class Connection:
    """One keep-alive connection to the hub, opened on first use and again after a close."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._stream: trio.SocketStream | None = None
        self._conn: h11.Connection | None = None

    async def request(
        self,
        method: str,
        target: str,
        *,
        token: str | None = None,
        body: Any = None,
    ) -> Answer:
        """`method target` with `body` as JSON (when given) and `token` as the bearer."""
        payload = b"" if body is None else json.dumps(body).encode()
        headers = [("Host", f"{self.host}:{self.port}"), ("Content-Length", str(len(payload)))]
        if body is not None:
            headers.append(("Content-Type", "application/json"))
        if token is not None:
            headers.append(("Authorization", f"Bearer {token}"))
        request = h11.Request(method=method, target=target, headers=headers)
        for attempt in (1, 2):
            reused = self._stream is not None
            if self._stream is None:
                await self._open()
            try:
                return await self._exchange(request, payload)
            except (trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError) as exc:
                await self.aclose()
                if not reused or attempt == 2:
                    raise ExchangeFailed(f"{method} {target}: {exc!r}") from exc
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        stream, self._stream, self._conn = self._stream, None, None
        if stream is not None:
            await trio.aclose_forcefully(stream)

    async def _open(self) -> None:
        self._stream = await trio.open_tcp_stream(self.host, self.port)
        self._conn = h11.Connection(h11.CLIENT)

    async def _exchange(self, request: h11.Request, payload: bytes) -> Answer:
        stream, conn = self._stream, self._conn
        assert stream is not None and conn is not None
        began = time.perf_counter()
        await stream.send_all(
            conn.send(request) + conn.send(h11.Data(data=payload)) + conn.send(h11.EndOfMessage())
        )
        status = 0
        kept = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await stream.receive_some(RECEIVE))  # b"": the end
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                kept += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                raise trio.BrokenResourceError("the hub closed the connection before answering")
        elapsed = time.perf_counter() - began
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()
        else:
            await self.aclose()
        return Answer(status, bytes(kept), elapsed)
