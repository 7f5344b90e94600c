"""Request framing the HTTP server leaves to the app: bodies the app never read, requests whose
length is stated twice, and clients that half-close. `FramingGuard` wraps the app at the ASGI
interface.

A response sent before its request's body was read (a 401, a 413, a 404) wedged the connection
for good. Hypercorn hands the app `http.disconnect` from inside the app's last `send`, as the
response ends and the stream closes; quart-trio cancels its request nursery when it receives
that message, and the cancellation lands in Hypercorn's close of the connection a moment later
(`TCPServer._close` awaits `send_eof`, a checkpoint, unshielded). The connection was then
neither closed nor recycled: the rest of the body was read into nothing, the next request was
never answered, and no timer ran (the keep-alive timer stops while a request is in flight; the
read timeout covers only waiting for bytes). Bodies that had fully arrived before the answer
escaped, because then the connection is recycled without a checkpoint on the way.

So here:

* The last `send` of a response runs shielded from the app's cancellation, beside a task that
  keeps taking the body from the app's bounded queue (Hypercorn puts `http.disconnect` into it
  before that `send` returns, and nothing else would read it once the app is done).
* A body the app left unread is read and dropped before the response goes out, up to
  `DISCARD_BYTES` more within `DISCARD_S`: the connection then stays open for the next request,
  as most servers do for a small remainder.
* Past that bound the response says `Connection: close`; after its bytes are out, the rest of
  the body is dropped for up to `LINGER_BYTES` or `LINGER_S` (so a client that writes its whole
  body before it reads gets the answer rather than a reset), and the connection closes.

h11 reads a request with both `Content-Length` and `Transfer-Encoding` as chunked and keeps the
connection, so whatever followed the chunked terminator was served as a second request: request
smuggling through any proxy that frames by `Content-Length`. Such a request, and an HTTP/1.0
request with `Transfer-Encoding`, is refused with 400 and `Connection: close` before the app
sees it (RFC 9112 §6.1, §6.3).

A client may shut down its sending side once its request is out and still read the answer (a
TCP half-close, as `nc -N` makes). Hypercorn's reader takes the end of the stream for the end of
the connection and closes the stream, which hands the app `http.disconnect` at once; quart-trio
cancels the request on it, so the client got no answer, or a head whose body was cancelled after
it had been written. So once the request is complete, or the app has begun its answer, the
disconnect reaches the app only after the answer is out, or after `answer_timeout_s` (the bound
a client still sending would have had, through Hypercorn's read timeout). A client that is
really gone costs the rest of one request's work; the writes to it fail quietly in Hypercorn. A
disconnect inside an unfinished body still reaches the app at once: the body it may be waiting
for will never come.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

import msgspec
import trio

from hub.errors import HubError

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[dict[str, Any], Receive, Send], Awaitable[None]]

DISCARD_BYTES = 256 * 1024
DISCARD_S = 1.0
LINGER_BYTES = 16 * 1024 * 1024
LINGER_S = 2.0


class RequestBody:
    """One request's body as the app receives it: how much has arrived and whether it ended.

    The app and `discard` may both be receiving; every message is counted whoever takes it."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self.received = 0
        self.complete = False  # the last of the body arrived
        self.ended = False  # nothing more will arrive: complete, or the client disconnected
        self._progress = trio.Event()

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            self.complete = self.complete or not message.get("more_body", False)
            self.ended = self.ended or self.complete
        else:  # http.disconnect: nothing more will arrive
            self.ended = True
        self._progress.set()
        self._progress = trio.Event()
        return message

    async def discard(self, max_bytes: int, timeout_s: float) -> bool:
        """Read and drop the body until it ends, `max_bytes` more arrive or `timeout_s` pass;
        True if it ended."""
        if self.ended:
            return True
        limit = self.received + max_bytes
        with trio.move_on_after(timeout_s):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self.drop_rest)
                while not self.ended and self.received <= limit:
                    await self._progress.wait()
                nursery.cancel_scope.cancel()
        return self.ended

    async def drop_rest(self) -> None:
        while not self.ended:
            await self.receive()


STREAMED_BODY = "hub.streamed_body"


class StreamedBody:
    """The body of a request the app reads at its own pace (an upload), at the ASGI interface.

    Quart reads every request's body into memory as fast as it arrives, whatever the handler
    takes from it. For the requests `FramingGuard` is told to stream, Quart is handed an empty
    body and the handler pulls the real one from here: each piece it asks for is taken from
    Hypercorn's bounded queue only then, so a client sending faster than the hub can store is
    slowed by TCP, and memory stays at a few pieces whatever the size. The handler finds this
    object in `request.scope[STREAMED_BODY]`."""

    def __init__(self, body: RequestBody) -> None:
        self._body = body
        self.released = trio.Event()  # the handler is done with the body (it has answered)
        self._gave_body = False

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body's pieces as they arrive; ClientGone if the client disconnects midway."""
        while not self._body.complete:
            message = await self._body.receive()
            if message["type"] == "http.disconnect":
                raise ClientGone("the client disconnected before its upload was complete")
            data = message.get("body", b"")
            if data:
                yield data

    async def app_receive(self, exchange: _Exchange) -> Message:
        """The `receive` Quart gets: an empty, complete body at once; after that, only the
        disconnect, once the handler has answered (body pieces left unread are dropped)."""
        if not self._gave_body:
            self._gave_body = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self.released.wait()
        while True:
            message = await exchange.receive()
            if message["type"] == "http.disconnect":
                return message


class ClientGone(HubError):
    """The client went away in the middle of a body the app was reading (the answer to it is
    a formality: nobody reads it)."""

    code = "invalid"
    status = 400


class _Exchange:
    """One request's responses pass through here on their way to the server."""

    def __init__(self, body: RequestBody, send: Send, answer_timeout_s: float) -> None:
        self._body = body
        self._send = send
        self._answer_timeout_s = answer_timeout_s
        self._answering = False
        self._answered = trio.Event()
        self.streamed: StreamedBody | None = None

    async def receive(self) -> Message:
        """The app's `receive`: the body, and a disconnect only when the app may act on it."""
        message = await self._body.receive()
        if message["type"] == "http.disconnect" and (self._body.complete or self._answering):
            # Perhaps only a half-close (see the module docstring): let the answer go out first.
            with trio.move_on_after(self._answer_timeout_s):
                await self._answered.wait()
        return message

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self._answering = True
            if self.streamed is not None:
                self.streamed.released.set()
            if not self._body.ended and not await self._body.discard(DISCARD_BYTES, DISCARD_S):
                message = _closing(message)
            await self._send(message)
        elif kind == "http.response.body" and not message.get("more_body", False):
            if not self._body.ended:
                await self._body.discard(LINGER_BYTES, LINGER_S)
            await self._finish(message)
        else:
            await self._send(message)

    async def _finish(self, message: Message) -> None:
        # The response's last send closes or recycles the connection inside Hypercorn and, on
        # the way, delivers `http.disconnect` to the app, on which quart-trio cancels the very
        # task that is sending (see the module docstring). Shielded, it finishes; it waits on
        # nothing unbounded: the socket write is one Hypercorn shields itself, and `drop_rest`
        # keeps the queue it puts the disconnect into from being full.
        with trio.CancelScope(shield=True):
            if self._body.ended:  # the queue has room for the disconnect: nothing to keep moving
                await self._send(message)
            else:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._body.drop_rest)
                    await self._send(message)
                    nursery.cancel_scope.cancel()
        self._answered.set()

    async def refuse(self, status: int, code: str, message: str) -> None:
        """Answer in the hub's error shape and close the connection, without the app."""
        # The body first: once a closing head is out, h11 expects nothing more from the client,
        # and if Hypercorn's reader then meets bytes pipelined after the body (a smuggled
        # request) it drops the connection at once, answer and all. With the body taken first,
        # the reader is parked on those bytes until the answer has gone.
        await self._body.discard(LINGER_BYTES, LINGER_S)
        payload = msgspec.json.encode({"error": {"code": code, "message": message, "details": []}})
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(payload)),
            (b"connection", b"close"),
        ]
        await self._send({"type": "http.response.start", "status": status, "headers": headers})
        await self._finish({"type": "http.response.body", "body": payload, "more_body": False})


def _closing(message: Message) -> Message:
    headers = list(message.get("headers", []))
    if not any(name.lower() == b"connection" for name, _ in headers):
        headers.append((b"connection", b"close"))
    return {**message, "headers": headers}


def framing_error(http_version: str, headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """Why a request's body length cannot be trusted, or None when its framing is sound."""
    names = {name.lower() for name, _ in headers}
    if b"transfer-encoding" not in names:
        return None
    if b"content-length" in names:
        return "a request may not carry both Content-Length and Transfer-Encoding"
    if http_version == "1.0":
        return "an HTTP/1.0 request may not carry Transfer-Encoding"
    return None


class FramingGuard:
    """ASGI middleware: refuse ambiguous framing, never leave a request's body half read, and
    answer a client that half-closed."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        answer_timeout_s: float,
        streamed: Callable[[dict[str, Any]], bool] | None = None,
    ) -> None:
        """`answer_timeout_s`: the longest a client that half-closed after its request waits for
        the answer before the app is told it has gone (the hub passes its idle timeout).
        `streamed` picks the requests whose body the app reads itself (`StreamedBody`)."""
        self.app = app
        self.answer_timeout_s = answer_timeout_s
        self.streamed = streamed

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body = RequestBody(receive)
        exchange = _Exchange(body, send, self.answer_timeout_s)
        problem = framing_error(scope.get("http_version", "1.1"), scope["headers"])
        if problem is not None:
            await exchange.refuse(400, "invalid", problem)
            return
        if self.streamed is not None and self.streamed(scope):
            streamed = exchange.streamed = StreamedBody(body)
            scope = {**scope, STREAMED_BODY: streamed}

            async def receive() -> Message:
                return await streamed.app_receive(exchange)

            await self.app(scope, receive, exchange.send)
            return
        await self.app(scope, exchange.receive, exchange.send)
