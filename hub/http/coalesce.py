"""HTTP/1.1 responses leave in one write: the status line and headers ride with the first body.

Hypercorn's HTTP/1.1 protocol writes a response's head as soon as the app starts it and the
body when the app sends it, so every JSON answer cost two `send` calls on the socket, two TCP
segments and two wake-ups of the client; and the empty end of a `Content-Length` body cost one
more pass through the connection's send lock. Holding the head until the first body bytes (or
the end of the response) saves that CPU on bare Hypercorn, and keeps an answer whole when a
client half-closes (docs/performance.md, decision register: "One write per HTTP response").

What a client sees is unchanged: the same bytes in the same order. Only when the head is sent
changes: with the first non-empty body chunk, at the end of the response (a HEAD request, a 204,
a 304, an empty body), or before anything else is written on the connection. An app that starts
a response and then waits before its first body bytes delays the head by as long; the hub
streams no responses.

Hypercorn builds its protocol objects itself, so `install` puts this subclass where its
connection wrapper looks for `H11Protocol`. It relies on Hypercorn's internal protocol
interface (`stream_send`, `_send_h11_event`), which is why `pyproject.toml` bounds Hypercorn to
the minor release these tests run against.
"""

from __future__ import annotations

import h11
import hypercorn.protocol
from hypercorn.events import RawData
from hypercorn.protocol.events import Body, EndBody, Response
from hypercorn.protocol.events import Event as StreamEvent
from hypercorn.protocol.h11 import H11Protocol
from hypercorn.typing import H11SendableEvent


class CoalescingH11Protocol(H11Protocol):
    """Hypercorn's HTTP/1.1 protocol, holding a final response's head for the body to carry."""

    _held: bytes = b""

    async def stream_send(self, event: StreamEvent) -> None:
        # A final head is held by `_send_h11_event`; body bytes and the end of the body carry
        # it. Anything else (closing the stream, raw upgrade data) must not overtake it.
        if self._held and not isinstance(event, (Response, Body, EndBody)):
            await self._flush()
        await super().stream_send(event)

    async def _send_h11_event(self, event: H11SendableEvent) -> None:
        try:
            data = self.connection.send(event)
        except h11.LocalProtocolError:
            if self.connection.their_state != h11.ERROR:
                raise
            data = b""  # as Hypercorn does: the peer broke the protocol, nothing more to say
        if isinstance(event, h11.Response):
            self._held += data
            return
        data, self._held = self._held + data, b""
        if data:
            await self.send(RawData(data=data))

    async def _flush(self) -> None:
        data, self._held = self._held, b""
        await self.send(RawData(data=data))


def install() -> None:
    """Serve HTTP/1.1 with `CoalescingH11Protocol` from now on (idempotent)."""
    hypercorn.protocol.H11Protocol = CoalescingH11Protocol  # type: ignore[misc]
