"""A webhook receiver for the tests: a real HTTP/1.1 server (Trio and h11) on 127.0.0.1 that
records every request and answers a programmed sequence of statuses, or never answers at all."""

from __future__ import annotations

import functools
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field

import h11
import trio


@dataclass(frozen=True)
class Received:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    server_name: str | None = None


@dataclass
class Receiver:
    """Answers the next of `statuses` (the last repeats); with `stall`, reads a request and then
    waits forever. `answer_body` and `answer_headers` go into every answer."""

    statuses: Sequence[int] = (200,)
    stall: bool = False
    answer_body: bytes = b'{"ok": true}'
    answer_headers: Sequence[tuple[str, str]] = ()
    requests: list[Received] = field(default_factory=list)
    port: int = 0
    _server_names: list[str | None] = field(default_factory=list)

    async def start(
        self, nursery: trio.Nursery, ssl_context: ssl.SSLContext | None = None
    ) -> Receiver:
        if ssl_context is None:
            serve = functools.partial(trio.serve_tcp, host="127.0.0.1")
            listeners = await nursery.start(serve, self._handle, 0)
        else:
            # Note the name each client asked for (SNI), to show which one the sender verified.
            ssl_context.sni_callback = lambda sock, name, ctx: self._server_names.append(name)
            serve = functools.partial(
                trio.serve_ssl_over_tcp, host="127.0.0.1", https_compatible=True
            )
            listeners = await nursery.start(serve, self._handle, 0, ssl_context)
        listener = listeners[0]
        if ssl_context is not None:
            listener = listener.transport_listener
        self.port = listener.socket.getsockname()[1]
        return self

    async def _handle(self, stream: trio.abc.Stream) -> None:
        try:
            await self._exchange(stream)
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError):
            pass  # a client that went away, or one that refused our certificate
        finally:
            await trio.aclose_forcefully(stream)

    async def _exchange(self, stream: trio.abc.Stream) -> None:
        connection = h11.Connection(h11.SERVER)
        request: h11.Request | None = None
        body = bytearray()
        while True:
            event = connection.next_event()
            if event is h11.NEED_DATA:
                connection.receive_data(await stream.receive_some(65536))
            elif isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
            else:
                return
        assert request is not None
        self.requests.append(
            Received(
                method=request.method.decode(),
                target=request.target.decode(),
                headers={k.decode(): v.decode() for k, v in request.headers},
                body=bytes(body),
                server_name=self._server_names[-1] if self._server_names else None,
            )
        )
        if self.stall:
            await trio.sleep_forever()
        status = self.statuses[min(len(self.requests), len(self.statuses)) - 1]
        headers = [
            ("Content-Length", str(len(self.answer_body))),
            ("Content-Type", "application/json"),
            ("Connection", "close"),
            *self.answer_headers,
        ]
        await stream.send_all(
            connection.send(h11.Response(status_code=status, headers=headers))
            + connection.send(h11.Data(data=self.answer_body))
            + connection.send(h11.EndOfMessage())
        )
