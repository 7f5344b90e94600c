"""The session actor: owns one authenticated socket — its outgoing queue, rate budget,
subscriptions, heartbeat and token lifetime.

Tasks in the session's nursery (trio-websocket adds a reader task of its own per connection):

    reader     frames in: decode (hub.protocol), answer cheap requests at once, hand sends and
               read marks to the worker
    worker     sends and read marks, one at a time, so one user's messages keep their order
    writer     frames out, from the bounded outgoing queue: whatever is queued when it wakes
               goes out in one write; it alone closes the socket (so a close frame never cuts
               a half-written frame)

A frame that finds the queue empty and the socket idle is written at once by the task that
produced it (a thread actor's fan-out, the timer's ping, the reader's reply), with one
non-blocking write; only what the kernel does not take goes through the queue and the writer.

Its heartbeat and token expiry are not tasks of its own: the supervisor's one timer task
(hub.actors.timers) calls `ping`, `heartbeat_timed_out` (4000) and `token_expired` (4001). The
session tells it what it needs: when the peer was last heard from (`last_heard`) and, on an `auth`
refresh, the new expiry. A ping goes out at once or is queued ahead of everything else.

The outgoing queue is bounded (`ws_outgoing_queue`). When it is full, ephemeral events (typing,
presence, joins and leaves) are shed first, newest first; a frame that must not be lost
(new_message, acks, errors) evicts the oldest ephemeral one, and if there is none the session is
cut off with 4009 — the client recovers by reconnecting with since_seq. The thread never waits
for a slow socket.

The session sees two things through protocols it declares here, so that it imports neither:
its socket (`Socket`: hub.ws.connection over trio-websocket; frames arrive already encoded by
hub.frames) and the realtime layer around it (`SessionHost`: hub.actors.supervisor).
"""

from __future__ import annotations

import itertools
import logging
import secrets
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, Union
from uuid import UUID

import trio

from hub import protocol
from hub.access import authorize_thread
from hub.actors.stats import HubStats
from hub.actors.thread import Subscriber
from hub.actors.timers import SessionTimers
from hub.auth import Principal, TokenVerifier
from hub.config import Settings
from hub.errors import HubError, Invalid, NotFound, Overloaded, Unauthorized
from hub.frames import error_frame, event_frame, internal_error
from hub.messaging import compose_draft
from hub.metrics import Metrics
from hub.ratelimit import Decision
from hub.storage import Storage
from hub.storage.acknowledgements import Acknowledgement
from hub.storage.actor import AuditSpec, SendTiming
from hub.storage.changes import Change
from hub.storage.messages import history_kept_since
from hub.storage.notifications import read_in_thread
from hub.storage.receipts import mark_read
from hub.storage.records import AuditEntry, MessageDraft, ReceiptRecord, StoredMessage
from hub.storage.sql import Op

log = logging.getLogger(__name__)

ABUSE_LIMIT = 20  # invalid or refused frames ...
ABUSE_WINDOW_S = 60.0  # ... within this window close the socket with 4008
WORK_QUEUE = 64
_session_numbers = itertools.count(1)


USER_AGENT_MAX = 500  # as in REST audit rows


class SocketClosed(Exception):
    """The socket is closed, by either side: nothing more can be read or written."""


class Socket(Protocol):
    """What a session needs of its WebSocket: hub.ws.connection.Connection over trio-websocket.
    Frames written are already encoded (hub.frames)."""

    async def receive(self) -> str | bytes:
        """The next message from the peer; SocketClosed once the connection is closed."""
        ...

    def write_now(self, data: bytes) -> int:
        """Write what the kernel takes of `data` at once, from any task, without waiting: the
        number of bytes written (0 while another write holds the socket, or when it is full or
        closed). The caller owes the rest to `write`, ahead of anything else."""
        ...

    async def write(self, data: bytes) -> None:
        """Write `data` whole; SocketClosed if the connection is gone."""
        ...

    async def close(self, code: int, reason: str) -> None:
        """Send the close frame and wait for the peer's (the caller bounds the wait)."""
        ...

    def ping_frame(self) -> bytes:
        """A new ping frame to write; the time its pong arrives is `pong_at`."""
        ...

    @property
    def pong_at(self) -> float:
        """Trio time of the last pong (-inf before the first)."""
        ...


class SessionHost(Protocol):
    """What a session needs of the realtime layer around it: hub.actors.supervisor.Supervisor
    (a fake in tests/realtime/test_session_streams.py). Every call is on behalf of this session's
    own principal; thread commands go through the thread's actor."""

    settings: Settings
    storage: Storage
    stats: HubStats
    metrics: Metrics  # the hub's: frames in and out, refusals
    timers: SessionTimers[Any]

    async def take_message_token(self, user_id: UUID) -> Decision:
        """One token of the user's message budget, shared by all of their sockets (on every
        node, where the hub has several)."""
        ...

    async def join(
        self,
        subscriber: Subscriber,
        thread_id: UUID,
        *,
        since_seq: int | None,
        recovered: bool = True,
        ref: str | None = None,
        silent: bool = False,
        since_change: int | None = None,
    ) -> None:
        """Subscribe to the thread (its actor acks, unless `silent`); replays from `since_seq`
        (and the changes of earlier messages after `since_change`)."""
        ...

    async def leave(self, session_id: str, thread_id: UUID, ref: str | None = None) -> bool:
        """Unsubscribe; False if no running actor took it (the session acks itself then)."""
        ...

    async def post_authorized(
        self,
        principal: Principal,
        message: MessageDraft,
        *,
        audit: AuditSpec = (),
        timing: SendTiming | None = None,
    ) -> StoredMessage: ...

    def typing(self, principal: Principal, thread_id: UUID, is_typing: bool) -> None: ...

    def receipt(self, thread_id: UUID, user_id: UUID, seq: int, session_id: str) -> None: ...

    async def acknowledge(
        self, principal: Principal, thread_id: UUID, seq: int, entry: AuditEntry
    ) -> Acknowledgement: ...

    async def edit(
        self, principal: Principal, thread_id: UUID, seq: int, body: str, entry: AuditEntry
    ) -> Change: ...

    async def delete(
        self, principal: Principal, thread_id: UUID, seq: int, entry: AuditEntry
    ) -> Change: ...

    def set_user_status(self, user_id: UUID, status: str) -> None: ...

    def notify_user(self, user_id: UUID, frame: bytes) -> None:
        """An event for every socket of the user, on every node."""
        ...

    async def ensure_identity(self, principal: Principal) -> None: ...


# What the session's worker does in arrival order, so an acknowledgement or a read mark sent
# after a message is taken after it.
_Work = Union[
    "_Send", protocol.MarkRead, protocol.AckMessage, protocol.EditMessage, protocol.DeleteMessage
]


@dataclass(frozen=True, slots=True)
class _Send:
    """A send_message waiting for the worker, with the moment its frame arrived."""

    frame: protocol.SendMessage
    timing: SendTiming

    @property
    def ref(self) -> str | None:
        return self.frame.ref

    @property
    def thread_id(self) -> UUID:
        return self.frame.thread_id


@dataclass(frozen=True, slots=True)
class Peer:
    """Where a socket came from, for its audit rows: the address and the handshake's
    User-Agent."""

    ip: str | None = None
    user_agent: str | None = None


class OutgoingQueue:
    """The bounded queue between a session's producers (thread actors, its own reader) and its
    writer. `put` never blocks; `put_waiting` (replay) waits for room."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._frames: deque[tuple[bytes, bool]] = deque()
        # The unwritten end of a frame whose start is already on the wire: it goes out before
        # anything else, and even a dropping close keeps it, or the close frame would land in
        # the middle of a frame.
        self._partial = b""
        self._has_frames = trio.Event()
        self._has_room = trio.Event()
        self.shed = 0
        self.closed = False

    def __len__(self) -> int:
        return len(self._frames) + (1 if self._partial else 0)

    def put(self, frame: bytes, *, essential: bool) -> bool:
        """Queue a frame; False means an essential frame found no room (cut the session off)."""
        if self.closed:
            return True
        if len(self._frames) >= self.capacity:
            if not essential:
                self.shed += 1
                return True
            if not self._evict_ephemeral():
                return False
        self._frames.append((frame, essential))
        self._has_frames.set()
        return True

    def put_first(self, frame: bytes) -> None:
        """Queue a control frame (a ping) ahead of the backlog, as trio-websocket would write it
        between two of the writer's writes. It may take one slot beyond capacity, never more, so
        a peer that stops reading cannot pile up pings."""
        if self.closed or len(self._frames) > self.capacity:
            return
        self._frames.appendleft((frame, True))
        self._has_frames.set()

    def put_rest(self, rest: bytes) -> None:
        """Queue the unwritten end of a frame written in part, ahead of everything (the queue
        was empty when its start was written)."""
        self._partial = rest
        self._has_frames.set()

    async def put_waiting(self, frame: bytes) -> None:
        while len(self._frames) >= self.capacity and not self.closed:
            self._has_room = trio.Event()
            await self._has_room.wait()
        self.put(frame, essential=True)

    async def get(self, max_bytes: int = 64 * 1024) -> bytes | None:
        """The queued frames, joined, up to about `max_bytes` (at least one frame); None once
        the queue is closed and drained."""
        while not self._frames and not self._partial:
            if self.closed:
                return None
            self._has_frames = trio.Event()
            await self._has_frames.wait()
        frames = self._frames
        if self._partial:
            frame, self._partial = self._partial, b""
        else:
            frame, _ = frames.popleft()
        if frames and len(frame) < max_bytes:
            chunk, size = [frame], len(frame)
            while frames and size + len(frames[0][0]) <= max_bytes:
                frame, _ = frames.popleft()
                chunk.append(frame)
                size += len(frame)
            frame = b"".join(chunk)
        self._has_room.set()
        return frame

    def close(self, *, drop: bool) -> None:
        """Accept nothing more; with `drop`, forget what is queued too (the peer is too slow
        for it to matter)."""
        self.closed = True
        if drop:
            self._frames.clear()
        self._has_room.set()
        self._has_frames.set()

    def _evict_ephemeral(self) -> bool:
        for index, (_, essential) in enumerate(self._frames):
            if not essential:
                del self._frames[index]
                self.shed += 1
                return True
        return False


class Session:
    """One authenticated socket. Implements the thread actor's `Subscriber`."""

    def __init__(
        self,
        socket: Socket,
        principal: Principal,
        host: SessionHost,
        verifier: TokenVerifier,
        peer: Peer | None = None,
    ) -> None:
        settings = host.settings
        self.session_id = f"s{next(_session_numbers)}-{secrets.token_hex(4)}"
        self.principal = principal
        self._socket = socket
        self._host = host
        self._verifier = verifier
        self._settings = settings
        self.outgoing = OutgoingQueue(settings.ws_outgoing_queue)
        # thread -> the last seq queued to this socket (None: joined, nothing yet)
        self._subscriptions: dict[UUID, int | None] = {}
        self.peer = peer or Peer()
        # positive decisions -> (expiry, the thread's group)
        self._access: dict[tuple[UUID, str], tuple[float, UUID]] = {}
        self._work_send, self._work = trio.open_memory_channel[_Work | UUID](WORK_QUEUE)
        metrics = host.metrics
        self._frames_in = metrics.frames_in
        self._frames_in_invalid = metrics.frames_in_invalid
        self._frames_out = metrics.frames_out
        self._rate_limited = metrics.rate_limited["websocket", "send"]
        self._abuse: deque[float] = deque()
        self._frame_at = trio.current_time()  # the handshake counts as hearing from the peer
        self._close_code: int | None = None
        self._close_reason = ""
        self._nursery: trio.Nursery | None = None
        self._writer_scope = trio.CancelScope()

    @property
    def close_code(self) -> int | None:
        """The code this session closed (or is closing) with; None if the peer went away."""
        return self._close_code

    @property
    def subscribed_threads(self) -> list[UUID]:
        return list(self._subscriptions)

    @property
    def last_heard(self) -> float:
        """Trio time of the last frame or pong from the peer."""
        return max(self._frame_at, self._socket.pong_at)

    # --- lifecycle -------------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve the socket until it closes; leave every thread on the way out."""
        timers = self._host.timers
        timers.add(self, self.principal.expires_at)
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._writer)
                nursery.start_soon(self._reader)
                nursery.start_soon(self._worker)
                self.send(
                    protocol.Ready(
                        user_id=self.principal.user_id,
                        session_id=self.session_id,
                        heartbeat_s=self._settings.ws_heartbeat_s,
                        expires_at=self.principal.expires_at,
                    )
                )
        finally:
            timers.remove(self)
            self.outgoing.close(drop=True)
            with trio.CancelScope(shield=True) as scope:
                scope.deadline = trio.current_time() + 2.0
                for thread_id in list(self._subscriptions):
                    await self._host.leave(self.session_id, thread_id)
                self._subscriptions.clear()

    def close(
        self, code: int, reason: str, *, timeout_s: float | None = None, flush: bool = True
    ) -> None:
        """Ask the writer to close the socket with `code` (first request wins): it writes what is
        already queued (unless `flush` is false), then the close frame, all within `timeout_s`."""
        if self._close_code is not None:
            return
        self._close_code, self._close_reason = code, reason
        self.outgoing.close(drop=not flush)
        self._writer_scope.deadline = trio.current_time() + (
            timeout_s if timeout_s is not None else self._settings.ws_close_timeout_s
        )

    # --- timers (called by the host's timer task; they never block) ------------------------------

    def ping(self) -> None:
        frame = self._socket.ping_frame()
        if not self._write_now(frame):
            self.outgoing.put_first(frame)

    def heartbeat_timed_out(self) -> None:
        self._host.stats.heartbeat_timeouts += 1
        log.info("session %s: no pong in time, closing", self.session_id)
        self.close(protocol.CLOSE_HEARTBEAT_TIMEOUT, "heartbeat timeout", timeout_s=1.0)

    def token_expired(self) -> None:
        self.send(protocol.Error(code="unauthorized", message="the token has expired"))
        self.close(protocol.CLOSE_UNAUTHORIZED, "token expired")

    def send(self, frame: protocol.ServerFrame) -> None:
        """Queue a reply of this session's own (essential)."""
        self._frames_out[type(frame)].inc()
        self._put(event_frame(frame), essential=True)

    # --- Subscriber ------------------------------------------------------------------------------

    def deliver(self, frame: bytes, *, essential: bool) -> None:
        self._put(frame, essential=essential)

    def deliver_message(self, thread_id: UUID, seq: int, frame: bytes) -> None:
        if thread_id not in self._subscriptions:
            # Left, or refused on a token refresh, while this was on its way from the actor:
            # the socket must not see the thread's traffic past its leave.
            return
        self._subscriptions[thread_id] = seq
        self._put(frame, essential=True)

    def _put(self, frame: bytes, *, essential: bool) -> None:
        if not self._write_now(frame) and not self.outgoing.put(frame, essential=essential):
            self.cut_off()

    def _write_now(self, frame: bytes) -> bool:
        """Write `frame` from the calling task when nothing is queued ahead of it; True when it
        is on the wire or its unwritten end is queued first.

        Why: most frames find an idle socket with an empty queue. Handing each one to the
        writer task costs a task switch per frame and subscriber, a visible share of the hub's
        CPU under fan-out (docs/performance.md, decision register: "Encode-once fan-out,
        direct socket writes"). The writer stays for what the kernel will not take at once.
        Order holds because this path runs only while the queue is empty and no write holds the
        stream (the writer takes the stream lock before it takes frames off the queue)."""
        if self.outgoing or self.outgoing.closed:
            return False
        written = self._socket.write_now(frame)
        if written == 0:
            return False
        if written < len(frame):
            self.outgoing.put_rest(frame[written:])
        return True

    async def deliver_replay(self, thread_id: UUID, seq: int, frame: bytes) -> None:
        await self.outgoing.put_waiting(frame)
        if thread_id in self._subscriptions:
            self._subscriptions[thread_id] = seq

    def joined(self, thread_id: UUID, last_seq: int) -> None:
        if thread_id in self._subscriptions and self._subscriptions[thread_id] is None:
            self._subscriptions[thread_id] = last_seq

    def cut_off(self) -> None:
        if self._close_code is None:
            self._host.stats.slow_consumers_cut += 1
            log.info("session %s: outgoing queue overflowed, closing 4009", self.session_id)
        self.close(protocol.CLOSE_SLOW_CONSUMER, "too slow: reconnect with since_seq", flush=False)

    def subscription_lost(self, thread_id: UUID, error: protocol.Error | None) -> None:
        if thread_id not in self._subscriptions:
            return
        if error is not None:
            del self._subscriptions[thread_id]
            self.send(error)
            return
        try:
            self._work_send.send_nowait(thread_id)  # the worker rejoins with since_seq
        except trio.WouldBlock:
            del self._subscriptions[thread_id]
            self.send(
                protocol.Error(
                    code="internal",
                    message="the thread restarted; join it again with since_seq",
                    thread_id=thread_id,
                )
            )

    # --- tasks -----------------------------------------------------------------------------------

    async def _writer(self) -> None:
        with self._writer_scope:
            try:
                while (frames := await self.outgoing.get()) is not None:
                    await self._socket.write(frames)
                assert self._close_code is not None
                await self._socket.close(self._close_code, self._close_reason)
            except SocketClosed:
                pass
        assert self._nursery is not None
        self._nursery.cancel_scope.cancel()

    async def _reader(self) -> None:
        try:
            while True:
                raw = await self._socket.receive()
                self._frame_at = trio.current_time()
                await self._receive(raw)
        except SocketClosed:
            pass
        if self._close_code is None:
            # The peer went away: nothing left to write.
            assert self._nursery is not None
            self._nursery.cancel_scope.cancel()

    async def _receive(self, raw: str | bytes) -> None:
        if isinstance(raw, bytes):
            # The protocol is JSON text; a binary frame is refused as RFC 6455 says (1003).
            self._frames_in_invalid.inc()
            self.send(
                protocol.Error(
                    code="invalid",
                    message="binary frames are not accepted: every frame is a JSON text frame",
                )
            )
            self.close(protocol.CLOSE_UNSUPPORTED_DATA, "binary frame")
            return
        limit = self._settings.ws_max_frame
        # trio-websocket hands over text; the limit is in UTF-8 bytes (encode only when it could
        # matter).
        size = len(raw) if len(raw) * 4 <= limit else len(raw.encode())
        if size > limit:
            self._frames_in_invalid.inc()
            self._refuse(
                protocol.Error(
                    code="invalid",
                    message=f"frame larger than {self._settings.ws_max_frame} bytes",
                )
            )
            return
        try:
            frame = protocol.decode_client(raw)
        except protocol.ProtocolError as exc:
            self._frames_in_invalid.inc()
            self._refuse(protocol.Error(code="invalid", message=exc.message, ref=exc.ref))
            return
        self._frames_in[type(frame)].inc()
        try:
            await self._dispatch(frame)
        except HubError as exc:
            thread_id = getattr(frame, "thread_id", None)
            self._answer_error(exc, frame.ref, thread_id)
        except Exception:
            log.exception("session %s: %s failed", self.session_id, type(frame).__name__)
            self.send(internal_error(frame.ref))

    async def _worker(self) -> None:
        async for item in self._work:
            try:
                if isinstance(item, UUID):
                    await self._rejoin(item)
                elif isinstance(item, _Send):
                    await self._send_message(item.frame, item.timing)
                elif isinstance(item, protocol.AckMessage):
                    await self._ack_message(item)
                elif isinstance(item, protocol.EditMessage | protocol.DeleteMessage):
                    await self._change_message(item)
                else:
                    await self._mark_read(item)
            except HubError as exc:
                ref = None if isinstance(item, UUID) else item.ref
                thread_id = item if isinstance(item, UUID) else item.thread_id
                self._answer_error(exc, ref, thread_id)
            except Exception:
                log.exception("session %s: %r failed", self.session_id, item)
                self.send(internal_error(None if isinstance(item, UUID) else item.ref))

    # --- requests --------------------------------------------------------------------------------

    async def _dispatch(self, frame: protocol.ClientFrame) -> None:
        match frame:
            case protocol.Ping():
                self.send(protocol.Pong(ref=frame.ref))
            case protocol.JoinThread():
                await self._join(frame)
            case protocol.LeaveThread():
                subscribed = frame.thread_id in self._subscriptions
                self._subscriptions.pop(frame.thread_id, None)
                self._forget_access(frame.thread_id)
                # The actor acks (after user_left went out); if it is gone, the ack is ours.
                if not (
                    subscribed
                    and await self._host.leave(self.session_id, frame.thread_id, frame.ref)
                ):
                    self.send(protocol.Ack(ref=frame.ref, thread_id=frame.thread_id))
            case protocol.SendMessage():
                decision = await self._host.take_message_token(self.principal.user_id)
                if not decision.allowed:
                    self._rate_limited.inc()
                    self._refuse(
                        protocol.Error(
                            code="rate_limited",
                            message="too many messages; retry later",
                            ref=frame.ref,
                            thread_id=frame.thread_id,
                            retry_after_s=round(decision.retry_after_s, 3),
                        )
                    )
                    return
                # Send→commit starts when the frame came off the socket (hub.metrics).
                self._queue_work(_Send(frame, SendTiming(self._frame_at)))
            case (
                protocol.MarkRead()
                | protocol.AckMessage()
                | protocol.EditMessage()
                | protocol.DeleteMessage()
            ):
                self._queue_work(frame)
            case protocol.TypingIndicator():
                if frame.thread_id not in self._subscriptions:
                    raise Invalid("join the thread before sending typing indicators")
                self._host.typing(self.principal, frame.thread_id, frame.is_typing)
                if frame.ref is not None:
                    self.send(protocol.Ack(ref=frame.ref, thread_id=frame.thread_id))
            case protocol.UpdatePresence():
                self._host.set_user_status(self.principal.user_id, frame.status)
                self.send(protocol.Ack(ref=frame.ref, status=frame.status))
            case protocol.Auth():
                await self._refresh(frame)

    def _queue_work(self, item: _Work) -> None:
        try:
            self._work_send.send_nowait(item)
        except trio.WouldBlock:
            raise Overloaded(
                f"more than {WORK_QUEUE} requests are waiting on this socket; retry"
            ) from None

    async def _join(self, frame: protocol.JoinThread) -> None:
        await self._authorize(frame.thread_id, "read")
        recovered = True
        if frame.since_seq is not None:
            recovered = await self._host.storage.read(
                history_kept_since(frame.thread_id, frame.since_seq)
            )
        self._subscriptions[frame.thread_id] = frame.since_seq
        try:
            await self._host.join(
                self,
                frame.thread_id,
                since_seq=frame.since_seq,
                recovered=recovered,
                ref=frame.ref,
                since_change=frame.since_change,
            )
        except HubError:
            self._subscriptions.pop(frame.thread_id, None)
            raise

    async def _rejoin(self, thread_id: UUID) -> None:
        """The thread actor restarted: subscribe again from the last seq this socket got."""
        if thread_id not in self._subscriptions:
            return
        since = self._subscriptions[thread_id]
        try:
            await self._host.join(self, thread_id, since_seq=since, silent=True)
        except HubError:
            self._subscriptions.pop(thread_id, None)
            raise

    async def _send_message(self, frame: protocol.SendMessage, timing: SendTiming) -> None:
        principal = self.principal
        message = await compose_draft(
            self._host.storage,
            principal,
            frame.thread_id,
            client_msg_id=frame.client_msg_id,
            kind=frame.kind,
            body=frame.body,
            metadata=frame.metadata,
            latitude=frame.latitude,
            longitude=frame.longitude,
            attachment_ids=frame.attachment_ids,
            reply_to=frame.reply_to,
            requires_ack=frame.requires_ack,
        )
        group_id = await self._authorize(frame.thread_id, "post")
        # The same audit row as a REST send (hub.http.messages), from the handshake's peer.
        entry = AuditEntry(
            action="message.send",
            target_type="message",
            target_id=frame.client_msg_id,
            actor_user_id=principal.user_id,
            actor_org_id=principal.org_id,
            group_id=group_id,
            ip=self.peer.ip,
            user_agent=self.peer.user_agent,
            details={"thread_id": str(frame.thread_id), "kind": frame.kind, "via": "websocket"},
        )
        stored = await self._host.post_authorized(
            principal,
            message,
            audit=lambda stored: () if stored.duplicate else [entry],
            timing=timing,
        )
        self.send(
            protocol.Ack(
                ref=frame.ref,
                thread_id=frame.thread_id,
                message=protocol.AckedMessage(
                    id=stored.id, seq=stored.seq, created_at=stored.created_at
                ),
                duplicate=True if stored.duplicate else None,
            )
        )

    async def _ack_message(self, frame: protocol.AckMessage) -> None:
        principal = self.principal
        entry = AuditEntry(
            action="message.acknowledge",
            target_type="message",
            target_id=str(frame.seq),
            actor_user_id=principal.user_id,
            actor_org_id=principal.org_id,
            ip=self.peer.ip,
            user_agent=self.peer.user_agent,
            details={"via": "websocket"},
        )
        ack = await self._host.acknowledge(principal, frame.thread_id, frame.seq, entry)
        self.send(
            protocol.Ack(
                ref=frame.ref,
                thread_id=frame.thread_id,
                seq=frame.seq,
                duplicate=None if ack.new else True,
            )
        )

    async def _change_message(self, frame: protocol.EditMessage | protocol.DeleteMessage) -> None:
        """An edit or a deletion, taken after the messages sent before it on this socket; the
        ack says the change's number (its event reaches the thread's subscribers)."""
        principal = self.principal
        editing = isinstance(frame, protocol.EditMessage)
        entry = AuditEntry(
            action="message.edit" if editing else "message.delete",
            target_type="message",
            target_id=str(frame.seq),
            actor_user_id=principal.user_id,
            actor_org_id=principal.org_id,
            ip=self.peer.ip,
            user_agent=self.peer.user_agent,
            details={"via": "websocket"},
        )
        if isinstance(frame, protocol.EditMessage):
            change = await self._host.edit(principal, frame.thread_id, frame.seq, frame.body, entry)
        else:
            change = await self._host.delete(principal, frame.thread_id, frame.seq, entry)
        self.send(
            protocol.Ack(
                ref=frame.ref,
                thread_id=frame.thread_id,
                seq=frame.seq,
                change_no=change.change_no,
                duplicate=None if change.new else True,
            )
        )

    async def _mark_read(self, frame: protocol.MarkRead) -> None:
        """Raise the read mark; the notifications about what it now covers are read with it,
        and every socket of the user hears of it (`notifications_read`)."""
        await self._authorize(frame.thread_id, "read")
        user_id, org_id = self.principal.user_id, self.principal.org_id

        def read(now: datetime) -> Op[tuple[ReceiptRecord, list[int], int]]:
            receipt = yield from mark_read(
                thread_id=frame.thread_id, user_id=user_id, seq=frame.seq, now=now
            )
            ids, unread = yield from read_in_thread(
                user_id, org_id, frame.thread_id, receipt.last_read_seq, now
            )
            return receipt, ids, unread

        receipt, cleared, unread = await self._host.storage.write(read)
        self.send(protocol.Ack(ref=frame.ref, thread_id=frame.thread_id, seq=receipt.last_read_seq))
        self._host.receipt(frame.thread_id, user_id, receipt.last_read_seq, self.session_id)
        if cleared:
            inbox = protocol.NotificationsRead(unread_count=unread, ids=cleared)
            self._host.notify_user(user_id, event_frame(inbox))

    async def _refresh(self, frame: protocol.Auth) -> None:
        """A new token for the same user. If it changes the organization or the role, every
        subscription is authorized again for the new principal first; those it may no longer
        read end with `error not_found` (the answer a join would get) before the ack."""
        principal = self._verifier.verify(frame.token)
        previous = self.principal
        if principal.user_id != previous.user_id:
            raise Unauthorized("a refreshed token must be for the same user")
        await self._host.ensure_identity(principal)
        refused: list[tuple[UUID, HubError]] = []
        if (principal.org_id, principal.role) != (previous.org_id, previous.role):
            for thread_id in list(self._subscriptions):
                try:
                    await authorize_thread(self._host.storage, principal, thread_id, "read")
                except HubError as exc:
                    # Fail closed: a decision that could not be taken (storage) ends the
                    # subscription too; the client may join again.
                    refused.append((thread_id, exc))
        # From here to the leaves nothing awaits: the socket changes principal and loses the
        # refused subscriptions in one step. The thread actors read `principal` from this
        # session, so typing, presence and revocations use the new one from now on.
        self.principal = principal
        self._access.clear()  # role or organization may have changed
        for thread_id, _ in refused:
            self._subscriptions.pop(thread_id, None)
        self._host.timers.set_expiry(self, principal.expires_at)
        for thread_id, exc in refused:
            await self._host.leave(self.session_id, thread_id)
            self.send(error_frame(exc, thread_id=thread_id))
        self.send(protocol.Ack(ref=frame.ref, expires_at=principal.expires_at))

    # --- access, errors, abuse -------------------------------------------------------------------

    async def _authorize(self, thread_id: UUID, action: str) -> UUID:
        """hub.access decides; a positive answer is remembered for `ws_access_cache_s` so the
        hot path (every send) stays off the database. It is forgotten on leave, on a token
        refresh and on any refusal for that thread. Returns the thread's group."""
        key = (thread_id, action)
        now = trio.current_time()
        remembered = self._access.get(key)
        if remembered is not None and remembered[0] > now:
            return remembered[1]
        try:
            access = await authorize_thread(
                self._host.storage,
                self.principal,
                thread_id,
                action,  # type: ignore[arg-type]
            )
        except HubError:
            self._forget_access(thread_id)
            raise
        if len(self._access) > 1000:
            self._access.clear()
        self._access[key] = (now + self._settings.ws_access_cache_s, access.group_id)
        return access.group_id

    def forget_access(self, thread_ids: Sequence[UUID]) -> None:
        """Drop remembered access decisions (the router calls this on a membership change)."""
        for thread_id in thread_ids:
            self._forget_access(thread_id)

    def _forget_access(self, thread_id: UUID) -> None:
        for action in ("read", "post"):
            self._access.pop((thread_id, action), None)

    def _answer_error(self, error: HubError, ref: str | None, thread_id: UUID | None) -> None:
        if isinstance(error, NotFound | Invalid) and thread_id is not None:
            self._forget_access(thread_id)
        frame = error_frame(error, ref, thread_id)
        if frame.code in ("invalid", "rate_limited"):
            self._refuse(frame)
        else:
            self.send(frame)

    def _refuse(self, frame: protocol.Error) -> None:
        """Answer an invalid or over-limit frame; too many of them close the socket (4008)."""
        self.send(frame)
        now = trio.current_time()
        self._abuse.append(now)
        while self._abuse and self._abuse[0] < now - ABUSE_WINDOW_S:
            self._abuse.popleft()
        if len(self._abuse) >= ABUSE_LIMIT:
            if self._close_code is None:
                self._host.stats.abuse_closes += 1
            self.close(protocol.CLOSE_POLICY, "too many invalid or refused frames")
