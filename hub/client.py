"""A Trio client for the hub's WebSocket protocol: what the tests, the bench and users share.

    async with hub.client.connect(ws_url, token) as client:
        await client.join(thread_id)
        ack = await client.send(thread_id, "Tent goes up at 3pm")
        async for event in client.events():
            ...

What it does for you:
- Reconnects with exponential backoff (and jitter) when the connection drops, is cut off as
  too slow (4009), or the server restarts (1001). A bad token (4001) or a refused handshake
  (403) is final: waiting calls raise `HubClientError`.
- Fails over: given several URLs (the nodes of one hub), it connects to the first and, whenever
  a connection ends or cannot be made, tries the next one in turn. Any node serves any thread,
  and the rejoin below recovers what was missed meanwhile from the database all nodes share.
- Remembers every joined thread and the last seq it delivered there, and rejoins with
  `since_seq` after a reconnect; the server replays what was missed. `new_message` events are
  delivered to you exactly once per thread, in seq order (replayed duplicates are dropped).
- `send` generates a client_msg_id and waits for the ack (sent by the server only after the
  commit). Requests made while disconnected wait, and every unanswered request is sent again
  after a reconnect; client_msg_id makes a repeated send safe (the server answers with the
  original message, never stores a second one).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import random
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

import trio
from trio_websocket import (
    ConnectionClosed,
    ConnectionRejected,
    HandshakeError,
    WebSocketConnection,
    wrap_client_stream,
)
from wsproto.utilities import LocalProtocolError

from hub import protocol
from hub.validation import ClientKind

log = logging.getLogger(__name__)

FATAL_CLOSE_CODES = {protocol.CLOSE_UNAUTHORIZED, protocol.CLOSE_POLICY}


class HubClientError(Exception):
    """The server refused a request (an `error` frame), or the connection cannot be made."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        retry_after_s: float | None = None,
        thread_id: UUID | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retry_after_s = retry_after_s
        self.thread_id = thread_id

    @classmethod
    def from_frame(cls, frame: protocol.Error) -> HubClientError:
        return cls(
            frame.code, frame.message, retry_after_s=frame.retry_after_s, thread_id=frame.thread_id
        )


@dataclass(eq=False)
class _Request:
    frame: Any  # a client frame with a ref
    done: trio.Event = field(default_factory=trio.Event)
    reply: Any = None
    error: BaseException | None = None

    def resolve(self, reply: Any = None, error: BaseException | None = None) -> None:
        if not self.done.is_set():
            self.reply, self.error = reply, error
            self.done.set()


class HubClient:
    def __init__(
        self,
        url: str | Sequence[str],
        token: str,
        *,
        auth_in_frame: bool = False,
        origin: str | None = None,
        backoff_s: float = 0.05,
        backoff_max_s: float = 5.0,
        event_buffer: int = 10_000,
        request_timeout_s: float = 30.0,
        wrap_stream: Callable[[trio.SocketStream], Any] | None = None,
    ) -> None:
        self.urls = [url] if isinstance(url, str) else list(url)
        if not self.urls:
            raise ValueError("expected at least one ws:// URL")
        self._endpoints = [_endpoint(u) for u in self.urls]
        self._node = 0  # index into urls of the node the client connects to next
        self.url = self.urls[0]  # the node of the current (or the last) connection
        self.token = token
        self._auth_in_frame = auth_in_frame
        self._origin = origin
        self._backoff_s = backoff_s
        self._backoff_max_s = backoff_max_s
        self._request_timeout_s = request_timeout_s
        self._wrap_stream = wrap_stream
        self._refs = itertools.count(1)
        self._requests: dict[str, _Request] = {}
        self._joined: dict[UUID, None] = {}  # threads to rejoin, in join order
        self.last_seq: dict[UUID, int] = {}  # per thread: the last new_message delivered
        # per thread: the highest change (edit, deletion) delivered, or the join's last_change
        self.last_change: dict[UUID, int] = {}
        self._events_send, self._events = trio.open_memory_channel[protocol.ServerFrame](
            event_buffer
        )
        self._ws: WebSocketConnection | None = None
        self._stream: Any = None
        self._connected = trio.Event()
        self._fatal: HubClientError | None = None
        self._closing = False
        self._closed = trio.Event()
        self.user_id: UUID | None = None
        self.session_id: str | None = None
        self.connects = 0
        self.close_codes: list[int | None] = []  # how each connection ended, in order
        self._cancel_scope = trio.CancelScope()

    # --- public API ------------------------------------------------------------------------------

    async def join(self, thread_id: UUID, *, since_seq: int | None = None) -> protocol.Ack:
        """Join a thread; the ack has last_seq and presence. Missed messages since `since_seq`
        (default: the last one this client delivered there) are replayed as events."""
        if since_seq is not None:
            self.last_seq[thread_id] = since_seq
        ack = await self._request(protocol.JoinThread(thread_id=thread_id))
        self._joined[thread_id] = None
        if thread_id not in self.last_seq and ack.last_seq is not None:
            self.last_seq[thread_id] = ack.last_seq
        if thread_id not in self.last_change and ack.last_change is not None:
            self.last_change[thread_id] = ack.last_change
        return ack

    async def leave(self, thread_id: UUID) -> protocol.Ack:
        self._joined.pop(thread_id, None)
        return await self._request(protocol.LeaveThread(thread_id=thread_id))

    async def send(
        self,
        thread_id: UUID,
        body: str,
        *,
        client_msg_id: str | None = None,
        kind: ClientKind = "text",
        reply_to: int | None = None,
        metadata: dict[str, Any] | None = None,
        latitude: float | None = None,
        longitude: float | None = None,
        attachment_ids: list[UUID] | None = None,
        requires_ack: bool = False,
    ) -> protocol.Ack:
        """Send a message and wait for its ack (`ack.message` has id, seq, created_at). A
        location (`kind="location"`) takes `latitude` and `longitude`; `body` is its label. An
        attachment (`kind="attachment"`) takes the ids of uploads (REST `POST
        /threads/{id}/attachments`); `body` is its caption. A change of plan (`kind="change"`)
        or `requires_ack` asks the other organizations to acknowledge it (`acknowledge`)."""
        frame = protocol.SendMessage(
            thread_id=thread_id,
            body=body,
            client_msg_id=client_msg_id or uuid.uuid4().hex,
            kind=kind,
            reply_to=reply_to,
            metadata=metadata or {},
            latitude=latitude,
            longitude=longitude,
            attachment_ids=attachment_ids or [],
            requires_ack=requires_ack,
        )
        return await self._request(frame)

    async def edit(self, thread_id: UUID, seq: int, body: str) -> protocol.Ack:
        """Replace the text of one's own message; `ack.change_no` numbers the change, and the
        thread's subscribers get `message_edited`."""
        return await self._request(protocol.EditMessage(thread_id=thread_id, seq=seq, body=body))

    async def delete(self, thread_id: UUID, seq: int) -> protocol.Ack:
        """Delete a message (one's own, or any as an owner or admin of the group's
        organization); `ack.duplicate` when it was deleted already. Subscribers get
        `message_deleted`."""
        return await self._request(protocol.DeleteMessage(thread_id=thread_id, seq=seq))

    async def acknowledge(self, thread_id: UUID, seq: int) -> protocol.Ack:
        """Confirm message `seq` for this user's organization; `ack.duplicate` when it had
        been confirmed already. Everyone in the thread gets `message_acknowledged`."""
        return await self._request(protocol.AckMessage(thread_id=thread_id, seq=seq))

    async def typing(self, thread_id: UUID, is_typing: bool = True) -> None:
        """Fire and forget; dropped while disconnected (it would be stale anyway)."""
        frame = protocol.TypingIndicator(thread_id=thread_id, is_typing=is_typing)
        with contextlib.suppress(ConnectionClosed, AttributeError):
            await self._ws.send_message(protocol.encode(frame))  # type: ignore[union-attr]

    async def set_presence(self, status: protocol.PresenceStatus) -> protocol.Ack:
        return await self._request(protocol.UpdatePresence(status=status))

    async def mark_read(self, thread_id: UUID, seq: int) -> protocol.Ack:
        return await self._request(protocol.MarkRead(thread_id=thread_id, seq=seq))

    async def ping(self) -> protocol.Pong:
        return await self._request(protocol.Ping())

    async def refresh_token(self, token: str) -> protocol.Ack:
        """Extend the session with a new token (also used for later reconnects)."""
        ack = await self._request(protocol.Auth(token=token))
        self.token = token
        return ack

    async def send_raw(self, text: str) -> None:
        """Send any text as a frame (tests use it for malformed input)."""
        await self._connected.wait()
        assert self._ws is not None
        await self._ws.send_message(text)

    async def events(self) -> AsyncIterator[protocol.ServerFrame]:
        """Every event (not replies to requests): new_message, typing, presence, user_joined,
        user_left, read_receipt, message_acknowledged, notification, and errors that answer
        no request."""
        async for event in self._events:
            yield event

    async def next_event(self, *types: type, timeout_s: float = 10.0) -> Any:
        """The next event of one of `types` (others are skipped)."""
        with trio.fail_after(timeout_s):
            async for event in self._events:
                if not types or isinstance(event, types):
                    return event
        raise HubClientError("internal", "the client closed")

    async def drain(self, thread_id: UUID, upto_seq: int, timeout_s: float = 10.0) -> list[Any]:
        """new_message events of `thread_id` until one with seq >= upto_seq (others skipped)."""
        messages: list[Any] = []
        with trio.fail_after(timeout_s):
            async for event in self._events:
                if isinstance(event, protocol.NewMessage) and event.thread_id == thread_id:
                    messages.append(event.message)
                    if event.message.seq >= upto_seq:
                        return messages
        return messages

    async def drop_connection(self) -> None:
        """Cut the TCP connection without a close handshake, as a crash or a network failure
        would; the client then reconnects by itself (tests use this)."""
        if self._stream is not None:
            await self._stream.aclose()

    async def aclose(self) -> None:
        self._closing = True
        ws = self._ws
        if ws is not None:
            with trio.move_on_after(2):
                await ws.aclose(protocol.CLOSE_NORMAL)
        self._closed.set()
        self._cancel_scope.cancel()

    # --- requests --------------------------------------------------------------------------------

    async def _request(self, frame: Any) -> Any:
        if self._fatal is not None:
            raise self._fatal
        frame.ref = f"r{next(self._refs)}"
        request = _Request(frame)
        self._requests[frame.ref] = request
        try:
            ws = self._ws
            if ws is not None:
                with contextlib.suppress(ConnectionClosed):
                    await ws.send_message(self._encode_request(frame))
            with trio.fail_after(self._request_timeout_s):
                await request.done.wait()
        finally:
            self._requests.pop(frame.ref, None)
        if request.error is not None:
            raise request.error
        return request.reply

    def _encode_request(self, frame: Any) -> str:
        if isinstance(frame, protocol.JoinThread):
            # A join sent again after a reconnect picks up from what was delivered since: the
            # messages after the last one, and the changes of earlier ones after the last.
            frame.since_seq = self.last_seq.get(frame.thread_id)
            if frame.since_seq is not None:
                frame.since_change = self.last_change.get(frame.thread_id)
        return protocol.encode(frame)

    # --- the connection loop ---------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Stay connected until `aclose`; started once the first connection is ready."""
        delay = self._backoff_s
        started = False
        with self._cancel_scope:
            while not self._closing:
                try:
                    await self._connection(task_status if not started else None)
                    started = True
                    delay = self._backoff_s
                except HubClientError as exc:
                    self._fail_all(exc)
                    if not started:
                        raise
                    return
                except (
                    OSError,
                    HandshakeError,
                    ConnectionClosed,
                    trio.BrokenResourceError,
                    protocol.ProtocolError,
                    # trio-websocket answers a ping that crosses our close with a pong wsproto
                    # refuses (python-trio/trio-websocket#184, open; PR #198 would fix it):
                    # the connection was ending anyway. Delete when a release has that fix.
                    LocalProtocolError,
                ) as exc:
                    log.debug("client: connection failed: %r", exc)
                if self._closing:
                    break
                await trio.sleep(delay * (0.5 + random.random()))  # noqa: S311 (jitter)
                delay = min(delay * 2, self._backoff_max_s)
        self._fail_all(HubClientError("internal", "the client is closed"))

    def _fail_all(self, error: HubClientError) -> None:
        self._fatal = self._fatal or error
        for request in list(self._requests.values()):
            request.resolve(error=error)

    async def _connection(self, task_status: trio.TaskStatus[None] | None) -> None:
        headers = (
            [] if self._auth_in_frame else [(b"authorization", f"Bearer {self.token}".encode())]
        )
        if self._origin is not None:
            headers.append((b"origin", self._origin.encode()))
        host, port, path = self._endpoints[self._node]
        self.url = self.urls[self._node]
        # Whatever ends this connection, the next attempt goes to the next node.
        self._node = (self._node + 1) % len(self.urls)
        stream = await trio.open_tcp_stream(host, port)
        try:
            async with trio.open_nursery() as nursery:
                self._stream = self._wrap_stream(stream) if self._wrap_stream else stream
                ws = await wrap_client_stream(
                    nursery,
                    self._stream,
                    f"{host}:{port}",
                    path,
                    extra_headers=headers,
                    max_message_size=16 * 1024 * 1024,
                )
                try:
                    await self._serve(ws, task_status)
                finally:
                    self._ws = None
                    self._connected = trio.Event()
                    nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            # The nursery wraps what its tasks raised; the reconnect loop wants the one cause.
            leaf = _only_leaf(group)
            if isinstance(leaf, ConnectionRejected):
                raise HubClientError(
                    "forbidden", f"handshake rejected with {leaf.status_code}"
                ) from None
            if leaf is not None and not isinstance(leaf, trio.Cancelled):
                raise leaf from None
            raise
        finally:
            with trio.CancelScope(shield=True):
                await stream.aclose()

    async def _serve(self, ws: WebSocketConnection, task_status: Any) -> None:
        try:
            if self._auth_in_frame:
                await ws.send_message(protocol.encode(protocol.Auth(token=self.token)))
            first = protocol.decode_server(await ws.get_message())
            if isinstance(first, protocol.Error):
                raise HubClientError.from_frame(first)
            assert isinstance(first, protocol.Ready), first
            self.user_id, self.session_id = first.user_id, first.session_id
            self.connects += 1
            # Requests made from now on send themselves; the ones waiting are sent below, after
            # the rejoins, so a thread's replay starts before anything else is asked of it.
            self._ws = ws
            waiting = list(self._requests.values())
            pending_joins = {
                r.frame.thread_id for r in waiting if isinstance(r.frame, protocol.JoinThread)
            }
            for thread_id in self._joined:
                if thread_id not in pending_joins:
                    rejoin = protocol.JoinThread(thread_id=thread_id, ref=f"rejoin-{thread_id}")
                    await ws.send_message(self._encode_request(rejoin))
            for request in waiting:
                await ws.send_message(self._encode_request(request.frame))
            self._connected.set()
            if task_status is not None:
                task_status.started()
            while True:
                await self._dispatch(protocol.decode_server(await ws.get_message()))
        except ConnectionClosed as exc:
            if self._closing:
                # Our own close: let the reader task see the server's close frame.
                await self._closed.wait()
                return
            code = exc.reason.code if exc.reason is not None else None
            self.close_codes.append(code)
            if code in FATAL_CLOSE_CODES:
                raise HubClientError(
                    "unauthorized" if code == protocol.CLOSE_UNAUTHORIZED else "invalid",
                    f"the server closed the connection with {code}",
                ) from None

    async def _dispatch(self, frame: protocol.ServerFrame) -> None:
        ref = getattr(frame, "ref", None)
        if ref is not None and ref.startswith("rejoin-"):
            if isinstance(frame, protocol.Error):
                self._joined.pop(UUID(ref[len("rejoin-") :]), None)
                await self._events_send.send(frame)
            return
        request = self._requests.get(ref) if ref is not None else None
        if request is not None and isinstance(frame, protocol.Ack | protocol.Pong):
            request.resolve(frame)
            return
        if request is not None and isinstance(frame, protocol.Error):
            request.resolve(error=HubClientError.from_frame(frame))
            return
        if isinstance(frame, protocol.NewMessage):
            seq = frame.message.seq
            if seq <= self.last_seq.get(frame.thread_id, -1):
                return  # already delivered (a replay overlapping what we had)
            self.last_seq[frame.thread_id] = seq
        elif isinstance(frame, protocol.MessageEdited | protocol.MessageDeleted):
            known = self.last_change.get(frame.thread_id, 0)
            self.last_change[frame.thread_id] = max(known, frame.change_no)
        elif isinstance(frame, protocol.Ack):
            return  # a late reply to a request that gave up
        await self._events_send.send(frame)


def _endpoint(url: str) -> tuple[str, int, str]:
    """Host, port and path of a ws:// URL, or ValueError naming it."""
    parts = urlsplit(url)
    if parts.scheme != "ws" or not parts.hostname:
        raise ValueError(f"expected a ws:// URL, got {url!r}")
    return parts.hostname, parts.port or 80, parts.path or "/"


def _only_leaf(group: BaseExceptionGroup) -> BaseException | None:
    leaves: list[BaseException] = []

    def collect(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                collect(inner)
        else:
            leaves.append(exc)

    collect(group)
    return leaves[0] if len(leaves) == 1 else None


@contextlib.asynccontextmanager
async def connect(url: str | Sequence[str], token: str, **options: Any) -> AsyncIterator[HubClient]:
    """A connected client for the duration of the block (raises HubClientError if the first
    connection is refused). Several URLs are the nodes of one hub, tried in turn."""
    client = HubClient(url, token, **options)
    async with trio.open_nursery() as nursery:
        await nursery.start(client.run)
        try:
            yield client
        finally:
            await client.aclose()
