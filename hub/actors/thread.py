"""The thread actor: owns one thread's live state — subscribers, presence, typing, fan-out order.

Nothing else touches that state; sessions, the supervisor and the router send it commands.
The actor's loop never awaits anything but its inbox: storage work (storing a posted message,
replaying history, filling a gap, saving presence) runs in child tasks of the actor's nursery
that report back through the same inbox, so one slow query never stalls a thread's fan-out.

Ordering. Messages are stored concurrently (group commit), so commits can report back out of seq
order. The actor delivers strictly in seq order: a commit ahead of `delivered_seq + 1` waits in
`_pending`; if the missing seq does not show up within `GAP_WAIT_S` (a writer that gave up after
the database committed, or another process writing), the actor reads it back from storage.

Replay seam. A join with `since_seq` subscribes at once, in "replaying" mode: live messages for
that subscriber are held, a replay task streams `since_seq < seq <= delivered_seq` from storage
(waiting for room in the session's queue), then the held live messages follow. Every seq reaches
the subscriber once, in order, with nothing missing at the seam.

Across nodes (hub.broker). After commit the actor publishes the message's frame to its
thread's channel; the actors of the same thread on other nodes put it among their `_pending`
by seq, so a message from elsewhere and one committed here are ordered, deduplicated and
gap-filled by the same code. A lost last message is found by the seq check (`CheckSeq`, from
hub.actors.seqcheck), which fills from storage up to the stored `last_seq`. Typing, receipts,
status changes and joins and leaves cross as events carrying their frames. Who is in the thread
anywhere (`_shown`) is this node's view: its own sessions' users plus those the cluster's
presence store (hub.broker.presence) and other nodes' events reported; this node's own
registrations in that store are made by one child task, in order (`_registrar`).

Fan-out. Each event is encoded once, down to its WebSocket frame bytes (`hub.frames`); the
same bytes go to every subscriber through a non-blocking `deliver` (the session's bounded queue
decides what to shed or whom to cut off), so one slow socket never slows the thread for everyone
else.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar
from uuid import UUID

import msgspec
import trio

from hub import protocol
from hub.auth import Principal
from hub.broker import events as crossing
from hub.broker.errors import BrokerUnavailable
from hub.errors import HubError, Overloaded
from hub.frames import error_frame, event_frame
from hub.metrics import Metrics
from hub.storage.actor import AuditSpec, Authorize, SendTiming
from hub.storage.records import Message, MessageDraft, StoredMessage

log = logging.getLogger(__name__)
T = TypeVar("T")

TYPING_EXPIRY_S = 6.0
GAP_WAIT_S = 1.0
REPLAY_PAGE = 200


class Subscriber(Protocol):
    """What a thread actor needs from a session. Every method but `deliver_replay` is
    non-blocking: the actor never waits for a socket."""

    session_id: str
    principal: Principal

    def deliver(self, frame: bytes, *, essential: bool) -> None:
        """Queue an event; ephemeral ones (essential=False) may be shed under pressure."""

    def deliver_message(self, thread_id: UUID, seq: int, frame: bytes) -> None:
        """Queue a new_message; never dropped (an overflow cuts the subscriber off instead)."""

    async def deliver_replay(self, thread_id: UUID, seq: int, frame: bytes) -> None:
        """Queue a replayed new_message, waiting for room."""

    def joined(self, thread_id: UUID, last_seq: int) -> None:
        """The subscription is live from `last_seq` (what the ack said)."""

    def cut_off(self) -> None:
        """The subscriber fell too far behind: close it (4009), it will recover with since_seq."""

    def subscription_lost(self, thread_id: UUID, error: protocol.Error | None) -> None:
        """The actor stopped serving this subscription (crash, or a failed replay)."""


class ThreadStore(Protocol):
    """The storage a thread actor uses; `StorageThreadStore` in hub.actors.registry, a fake in
    unit tests."""

    async def last_seq(self, thread_id: UUID) -> int: ...

    async def append(
        self,
        message: MessageDraft,
        audit: AuditSpec,
        authorize: Authorize | None = None,
        timing: SendTiming | None = None,
    ) -> StoredMessage: ...

    async def messages_after(
        self, thread_id: UUID, after_seq: int, limit: int
    ) -> list[Message]: ...

    async def last_change(self, thread_id: UUID) -> int: ...

    async def changed_since(
        self, thread_id: UUID, since_change: int, upto_seq: int, limit: int
    ) -> list[Message]:
        """Messages up to `upto_seq` edited or deleted after change `since_change`, in change
        order."""
        ...

    async def user_name(self, user_id: UUID) -> str: ...

    async def save_presence(self, thread_id: UUID, statuses: dict[UUID, str]) -> None: ...


class ThreadBroker(Protocol):
    """What a thread actor needs of the broker (hub.broker.contract.Broker)."""

    node_id: str

    def publish(self, thread_id: UUID, event: crossing.ThreadEvent) -> None: ...

    def watch(self, thread_id: UUID) -> None: ...

    def unwatch(self, thread_id: UUID) -> None: ...


class ThreadPresence(Protocol):
    """The cluster's presence store, as a thread actor uses it (hub.broker.presence)."""

    async def join(self, thread_id: UUID, user_id: UUID, entry: bytes) -> bool: ...

    async def leave(self, thread_id: UUID, user_id: UUID) -> bool: ...

    async def set_entry(self, thread_id: UUID, user_id: UUID, entry: bytes) -> None: ...

    async def present(self, thread_id: UUID) -> dict[UUID, bytes]: ...


class _Alone:
    """The broker of a hub that is one process: nobody to tell."""

    node_id = "local"

    def publish(self, thread_id: UUID, event: crossing.ThreadEvent) -> None:
        pass

    def watch(self, thread_id: UUID) -> None:
        pass

    def unwatch(self, thread_id: UUID) -> None:
        pass


_entry_encoder = msgspec.msgpack.Encoder()
_entry_decoder = msgspec.msgpack.Decoder(protocol.PresenceEntry)


def encode_entry(entry: protocol.PresenceEntry) -> bytes:
    return _entry_encoder.encode(entry)


def decode_entry(data: bytes) -> protocol.PresenceEntry:
    return _entry_decoder.decode(data)


class Reply(Generic[T]):
    """A result slot a requester awaits with a deadline it chose."""

    def __init__(self) -> None:
        self._done = trio.Event()
        self._value: T | None = None
        self._error: BaseException | None = None

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def set(self, value: T) -> None:
        if not self._done.is_set():
            self._value = value
            self._done.set()

    def fail(self, error: BaseException) -> None:
        if not self._done.is_set():
            self._error = error
            self._done.set()

    async def wait(self, timeout_s: float) -> T:
        with trio.move_on_after(timeout_s):
            await self._done.wait()
        if not self._done.is_set():
            raise Overloaded("the thread did not answer in time")
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]


# --- commands ------------------------------------------------------------------------------------


@dataclass(eq=False, slots=True)
class Subscribe:
    subscriber: Subscriber
    status: str
    since_seq: int | None = None
    recovered: bool = True
    ref: str | None = None
    silent: bool = False  # an internal resubscribe: no ack frame
    since_change: int | None = None


@dataclass(eq=False, slots=True)
class Unsubscribe:
    session_id: str
    ref: str | None = None


@dataclass(eq=False, slots=True)
class Post:
    message: MessageDraft
    sender_name: str
    audit: AuditSpec = ()
    # Set when the sender's access is decided in the write (hub.access.decided_in_write).
    authorize: Authorize | None = None
    timing: SendTiming | None = None  # when the hub received it; the commit sets its moment
    reply: Reply[StoredMessage] = field(default_factory=Reply)


@dataclass(eq=False, slots=True)
class SetTyping:
    principal: Principal
    is_typing: bool


@dataclass(eq=False, slots=True)
class SetStatus:
    user_id: UUID
    status: str


@dataclass(eq=False, slots=True)
class Receipt:
    user_id: UUID
    seq: int
    session_id: str | None = None


@dataclass(eq=False, slots=True)
class Acknowledged:
    """An organization confirmed a message (`frame` is its `message_acknowledged` event),
    committed on this node; the router published it to the others."""

    frame: bytes


@dataclass(eq=False, slots=True)
class Changed:
    """A message was edited or deleted (`frame` is its `message_edited` or `message_deleted`
    event, change number `change_no`), committed on this node; the router published it."""

    frame: bytes
    change_no: int


@dataclass(eq=False, slots=True)
class Revoke:
    """An organization lost its membership of this thread's group: its live subscriptions end
    now, not at their next join."""

    organization_id: UUID


@dataclass(eq=False, slots=True)
class Remote:
    """An event another node published on this thread's channel."""

    event: crossing.ThreadEvent


@dataclass(eq=False, slots=True)
class CheckSeq:
    """The stored `last_seq` (hub.actors.seqcheck). What the *previous* check reported and is
    still not delivered is read from storage: it had a whole round to arrive by the broker.
    Filling up to the latest report instead would read back, under load, every message still
    in flight between nodes, and the reads would slow the hub further (seen in the 2-node
    bench: thousands of fills timing out)."""

    last_seq: int


@dataclass(eq=False, slots=True)
class Resync:
    """The broker (re)subscribed this thread: what was published before may be missed, and
    presence may have changed meanwhile. Register again, reload presence, check the seq."""


@dataclass(eq=False, slots=True)
class _Reloaded:
    entries: dict[UUID, protocol.PresenceEntry] | None  # None: the store could not answer
    last_seq: int | None


@dataclass(eq=False, slots=True)
class _LeftEverywhere:
    """The store's answer to this node's leave: the user is in the thread on no live node."""

    user_id: UUID


@dataclass(eq=False, slots=True)
class _PostDone:
    post: Post
    stored: StoredMessage | None
    error: HubError | None


@dataclass(eq=False, slots=True)
class _ReplayDone:
    subscription: _Subscription
    error: HubError | None


@dataclass(eq=False, slots=True)
class _Filled:
    frames: list[tuple[int, bytes]]


Command = (
    Subscribe
    | Unsubscribe
    | Post
    | SetTyping
    | SetStatus
    | Receipt
    | Acknowledged
    | Revoke
    | Remote
    | CheckSeq
    | Resync
    | _Reloaded
    | _LeftEverywhere
    | _PostDone
    | _ReplayDone
    | _Filled
)


@dataclass(eq=False, slots=True)
class _Subscription:
    subscriber: Subscriber
    replaying: bool = False
    # Live events held while replaying: (seq, new_message frame), or (None, a change's frame).
    held: list[tuple[int | None, bytes]] = field(default_factory=list)


@dataclass(eq=False, slots=True)
class _User:
    """A user with sessions on this node subscribed to the thread."""

    sessions: set[str] = field(default_factory=set)


@dataclass(slots=True)
class ThreadStats:
    delivered_seq: int = 0
    gaps_filled: int = 0
    subscribers: int = 0


class ThreadActor:
    """Owns one thread's live state: subscribers, presence, typing, delivery order."""

    def __init__(
        self,
        thread_id: UUID,
        store: ThreadStore,
        *,
        idle_s: float = 30.0,
        inbox_size: int = 1024,
        hold_limit: int = 4096,
        on_idle: Callable[[ThreadActor], bool] = lambda actor: True,
        metrics: Metrics | None = None,
        broker: ThreadBroker | None = None,
        presence: ThreadPresence | None = None,
    ) -> None:
        self.thread_id = thread_id
        self._store = store
        self._broker: ThreadBroker = broker if broker is not None else _Alone()
        self._origin = self._broker.node_id
        self._presence = presence
        self._idle_s = idle_s
        self._hold_limit = hold_limit
        self._on_idle = on_idle
        self.inbox, self._inbox = trio.open_memory_channel[Command](inbox_size)
        self._subs: dict[str, _Subscription] = {}
        self._users: dict[UUID, _User] = {}
        # Who is in the thread anywhere, as this node shows it (its own users included).
        self._shown: dict[UUID, protocol.PresenceEntry] = {}
        self._typing: dict[UUID, float] = {}  # user -> expiry, trio.current_time()
        self._remote_typing: dict[UUID, float] = {}  # users typing on other nodes
        self._known_last = 0  # the highest seq known to exist (seq checks)
        self._last_checked = 0  # what the last seq check reported
        # This node's registrations in the cluster presence store: what is wanted per user
        # (an entry to register, None to leave), and what the registrar has registered.
        self._want: dict[UUID, bytes | None] = {}
        self._registered: dict[UUID, bytes] = {}
        self._registrar_wakeup = trio.Event()
        self._delivered_seq = 0
        self._last_change = 0  # the highest change number of its messages known here
        # committed ahead of order: seq -> (frame, its send's timing; None when read back)
        self._pending: dict[int, tuple[bytes, SendTiming | None]] = {}
        self._gap_since: float | None = None
        self._filling = False
        self._posts: set[Post] = set()  # accepted, not yet answered
        self._replays = 0
        self._idle_since = 0.0
        self._names: dict[UUID, str] = {}
        self._dirty_presence: dict[UUID, str] = {}
        self._presence_wakeup = trio.Event()
        self._nursery: trio.Nursery | None = None
        self.started = False
        self.stats = ThreadStats()
        metrics = metrics if metrics is not None else Metrics()
        # The children fan-out counts on, looked up once (hub.metrics: one inc(n) a fan-out).
        out = metrics.frames_out
        self._messages_out = out[protocol.NewMessage]
        self._acks_out = out[protocol.Ack]
        self._commit_to_deliver = metrics.commit_to_deliver
        self._gap_repairs = metrics.gap_repairs
        self._broadcast_out = out  # by event type

    # --- lifecycle -------------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[ThreadActor] = trio.TASK_STATUS_IGNORED):
        """Serve commands until idle for `idle_s` (and `on_idle` agrees) or cancelled."""
        self._delivered_seq = await self._store.last_seq(self.thread_id)
        self._last_change = await self._store.last_change(self.thread_id)
        self.stats.delivered_seq = self._known_last = self._delivered_seq
        self._broker.watch(self.thread_id)
        if self._presence is not None:
            self._shown = await self._load_presence() or {}
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._presence_writer)
                if self._presence is not None:
                    nursery.start_soon(self._registrar)
                self._idle_since = trio.current_time()
                self.started = True
                task_status.started(self)
                await self._serve()
                nursery.cancel_scope.cancel()
        finally:
            self._broker.unwatch(self.thread_id)
            await self._flush_presence_shielded()

    async def _serve(self) -> None:
        while True:
            command: Command | None = None
            deadline = self._next_deadline()
            if deadline == math.inf:
                # The common case under load; a cancel scope per command was measurable.
                command = await self._inbox.receive()
            else:
                with trio.move_on_at(deadline):
                    command = await self._inbox.receive()
            if command is not None:
                self._handle(command)
            now = trio.current_time()
            self._expire_typing(now)
            self._check_gap(now)
            if self._is_idle() and now >= self._idle_since + self._idle_s:
                stats = self._inbox.statistics()
                # Unregistering and closing happen in one step with no checkpoint in between,
                # so a command can never be sent to an actor that will not read it.
                if stats.current_buffer_used == 0 and self._on_idle(self):
                    self._inbox.close()
                    return

    def abandon(self) -> list[Subscriber]:
        """After a crash: fail what was waiting, and return every subscriber (including those
        whose Subscribe was still queued) so the supervisor can tell them."""
        subscribers = [sub.subscriber for sub in self._subs.values()]
        error = HubError("the thread restarted; retry")
        for post in self._posts:
            post.reply.fail(error)
        while True:
            try:
                command = self._inbox.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                break
            if isinstance(command, Subscribe):
                subscribers.append(command.subscriber)
            elif isinstance(command, Post):
                command.reply.fail(error)
        self._inbox.close()
        return subscribers

    def registrations(self) -> list[tuple[UUID, bytes]]:
        """This node's registrations in the presence store for the thread (for the roster's
        refresh: read, never changed, from outside the actor)."""
        return list(self._registered.items())

    def _is_idle(self) -> bool:
        return not self._subs and not self._posts and not self._replays and not self._pending

    def _next_deadline(self) -> float:
        deadlines = [min(self._typing.values())] if self._typing else []
        if self._remote_typing:
            deadlines.append(min(self._remote_typing.values()))
        if self._gap_since is not None and not self._filling:
            deadlines.append(self._gap_since + GAP_WAIT_S)
        if self._is_idle():
            deadlines.append(self._idle_since + self._idle_s)
        return min(deadlines, default=math.inf)

    # --- commands --------------------------------------------------------------------------------

    def _handle(self, command: Command) -> None:
        match command:
            case Subscribe():
                self._subscribe(command)
            case Unsubscribe():
                self._unsubscribe(command.session_id, command.ref)
            case Post():
                self._posts.add(command)
                self._names[command.message.sender_user_id] = command.sender_name
                assert self._nursery is not None
                self._nursery.start_soon(self._store_message, command)
            case _PostDone():
                self._post_done(command)
            case SetTyping():
                self._set_typing(command.principal.user_id, command.is_typing)
            case SetStatus():
                self._set_status(command.user_id, command.status)
            case Receipt():
                frame = event_frame(
                    protocol.ReadReceipt(
                        thread_id=self.thread_id, user_id=command.user_id, seq=command.seq
                    )
                )
                self._broadcast(
                    frame, protocol.ReadReceipt, essential=True, exclude_session=command.session_id
                )
                self._broker.publish(self.thread_id, crossing.ReceiptRead(self._origin, frame))
            case Acknowledged(frame=frame):
                self._broadcast(frame, protocol.MessageAcknowledged, essential=True)
            case Changed(frame=frame, change_no=change_no):
                self._changed(frame, change_no)
            case Revoke():
                self._revoke(command.organization_id)
            case Remote():
                self._remote(command.event)
            case CheckSeq():
                overdue, self._last_checked = self._last_checked, command.last_seq
                self._learn_last_seq(overdue)
            case Resync():
                self._resync()
            case _Reloaded():
                if command.entries is not None:
                    self._reconcile_presence(command.entries)
                if command.last_seq is not None:
                    self._learn_last_seq(command.last_seq)
            case _LeftEverywhere():
                self._left_everywhere(command.user_id)
            case _ReplayDone():
                self._replay_done(command)
            case _Filled():
                self._filling = False
                self._gap_since = None  # a failed fill is retried GAP_WAIT_S from now
                repaired = False
                for seq, frame in command.frames:
                    if seq > self._delivered_seq:
                        repaired = repaired or seq not in self._pending
                        self._pending.setdefault(seq, (frame, None))
                self.stats.gaps_filled += 1
                if repaired:
                    self._gap_repairs.inc()
                self._drain_pending()
        self.stats.subscribers = len(self._subs)
        if self._is_idle():
            self._idle_since = trio.current_time()

    def _subscribe(self, command: Subscribe) -> None:
        subscriber = command.subscriber
        principal = subscriber.principal
        session_id = subscriber.session_id
        self._names[principal.user_id] = principal.name
        # A repeated join on the same socket replaces its subscription without announcing the
        # user again (their session is already counted).
        self._subs.pop(session_id, None)
        subscription = _Subscription(subscriber)
        self._subs[session_id] = subscription
        user = self._users.get(principal.user_id)
        first_session = user is None
        shown_before = principal.user_id in self._shown
        if user is None:
            user = self._users[principal.user_id] = _User()
            elsewhere = self._shown.get(principal.user_id)
            # Present on another node already: their one status is the one shown.
            entry = protocol.PresenceEntry(
                user_id=principal.user_id,
                name=principal.name,
                org_id=principal.org_id,
                status=elsewhere.status if elsewhere is not None else command.status,  # type: ignore[arg-type]
            )
            self._shown[principal.user_id] = entry
            self._register(principal.user_id)
        user.sessions.add(session_id)
        if not command.silent:
            ack = protocol.Ack(
                ref=command.ref,
                thread_id=self.thread_id,
                last_seq=self._delivered_seq,
                presence=list(self._shown.values()),
                recovered=command.recovered if command.since_seq is not None else None,
                last_change=self._last_change,
            )
            subscriber.deliver(event_frame(ack), essential=True)
            self._acks_out.inc()
        subscriber.joined(self.thread_id, self._delivered_seq)
        if first_session and not shown_before:
            entry = self._shown[principal.user_id]
            joined = event_frame(protocol.UserJoined(thread_id=self.thread_id, user=entry))
            self._broadcast(
                joined, protocol.UserJoined, essential=False, exclude_user=principal.user_id
            )
            if self._presence is None:
                self._broker.publish(
                    self.thread_id,
                    crossing.UserJoined(self._origin, entry.user_id, encode_entry(entry), joined),
                )
            self._dirty_presence[principal.user_id] = entry.status
            self._presence_wakeup.set()
        since = command.since_seq
        since_change = command.since_change if since is not None else None
        if since is not None and (
            since < self._delivered_seq
            or (since_change is not None and since_change < self._last_change)
        ):
            subscription.replaying = True
            self._replays += 1
            assert self._nursery is not None
            self._nursery.start_soon(
                self._replay, subscription, since, self._delivered_seq, since_change
            )

    def _unsubscribe(self, session_id: str, ref: str | None) -> None:
        subscription = self._subs.pop(session_id, None)
        if subscription is None:
            return
        if ref is not None:
            ack = protocol.Ack(ref=ref, thread_id=self.thread_id)
            subscription.subscriber.deliver(event_frame(ack), essential=True)
            self._acks_out.inc()
        user_id = subscription.subscriber.principal.user_id
        user = self._users.get(user_id)
        if user is None:
            return
        user.sessions.discard(session_id)
        if user.sessions:
            return
        del self._users[user_id]
        if self._typing.pop(user_id, None) is not None:
            self._broadcast_typing(user_id, False)
        if self._presence is None:
            self._left_everywhere(user_id)
        else:
            # Whether the user is still in the thread on another node is the store's answer
            # (`_LeftEverywhere`), not this node's guess.
            self._want[user_id] = None
            self._registrar_wakeup.set()

    def _left_everywhere(self, user_id: UUID) -> None:
        """The user is in the thread on no node now (unless they came back here meanwhile)."""
        if user_id in self._users or self._shown.pop(user_id, None) is None:
            return
        left = event_frame(protocol.UserLeft(thread_id=self.thread_id, user_id=user_id))
        self._broadcast(left, protocol.UserLeft, essential=False)
        self._broker.publish(self.thread_id, crossing.UserLeft(self._origin, user_id, left))
        self._dirty_presence[user_id] = "offline"
        self._presence_wakeup.set()

    def _revoke(self, organization_id: UUID) -> None:
        revoked = [
            sub.subscriber
            for sub in self._subs.values()
            if sub.subscriber.principal.org_id == organization_id
        ]
        # Same answer as a join would now get: the thread does not exist for them.
        error = protocol.Error(
            code="not_found", message=f"thread {self.thread_id} not found", thread_id=self.thread_id
        )
        for subscriber in revoked:
            self._unsubscribe(subscriber.session_id, None)
            subscriber.subscription_lost(self.thread_id, error)

    def _post_done(self, done: _PostDone) -> None:
        self._posts.discard(done.post)
        if done.error is not None:
            done.post.reply.fail(done.error)
            return
        stored = done.stored
        assert stored is not None
        done.post.reply.set(stored)
        if stored.duplicate or stored.seq <= self._delivered_seq:
            return
        message = done.post.message
        sender = message.sender_user_id
        if self._typing.pop(sender, None) is not None:
            self._broadcast_typing(sender, False)
        out = protocol.LiveMessage(
            id=stored.id,
            seq=stored.seq,
            sender_id=sender,
            sender_name=done.post.sender_name,
            org_id=message.sender_org_id,
            kind=message.kind,
            body=message.body,
            client_msg_id=message.client_msg_id,
            reply_to=message.reply_to,
            metadata=message.metadata,
            created_at=stored.created_at,
            requires_ack=message.requires_ack,
        )
        frame = event_frame(protocol.NewMessage(thread_id=self.thread_id, message=out))
        self._broker.publish(
            self.thread_id, crossing.MessageCommitted(self._origin, stored.seq, frame)
        )
        self._pending[stored.seq] = (frame, done.post.timing)
        self._drain_pending()

    def _drain_pending(self) -> None:
        """Deliver every pending message that is next in seq order."""
        while (next_up := self._pending.pop(self._delivered_seq + 1, None)) is not None:
            frame, timing = next_up
            self._delivered_seq += 1
            self._fan_out(self._delivered_seq, frame)
            if timing is not None and timing.committed_at is not None:
                self._commit_to_deliver.observe(trio.current_time() - timing.committed_at)
        # Anything pending now is beyond a missing seq.
        for seq in [s for s in self._pending if s <= self._delivered_seq]:
            del self._pending[seq]
        self._known_last = max(self._known_last, self._delivered_seq)
        behind = bool(self._pending) or self._known_last > self._delivered_seq
        self._gap_since = (self._gap_since or trio.current_time()) if behind else None
        self.stats.delivered_seq = self._delivered_seq

    def _learn_last_seq(self, last_seq: int) -> None:
        """The stored last seq: what is beyond the delivered one is filled after `GAP_WAIT_S`
        unless it arrives by then (a commit of this node's own still reporting back)."""
        if last_seq > self._known_last:
            self._known_last = last_seq
            self._drain_pending()

    def _fan_out(self, seq: int, frame: bytes) -> None:
        delivered = 0
        for subscription in list(self._subs.values()):
            if subscription.replaying:
                subscription.held.append((seq, frame))
                if len(subscription.held) > self._hold_limit:
                    subscription.subscriber.cut_off()
            else:
                subscription.subscriber.deliver_message(self.thread_id, seq, frame)
                delivered += 1
        self._messages_out.inc(delivered)

    def _replay_done(self, done: _ReplayDone) -> None:
        self._replays -= 1
        subscription = done.subscription
        session_id = subscription.subscriber.session_id
        if self._subs.get(session_id) is not subscription:
            return  # left, or replaced by a newer join on the same socket
        if done.error is not None:
            self._unsubscribe(session_id, None)
            error = error_frame(done.error, thread_id=self.thread_id)
            subscription.subscriber.subscription_lost(self.thread_id, error)
            return
        subscription.replaying = False
        held, subscription.held = subscription.held, []
        for seq, frame in held:
            if seq is None:
                subscription.subscriber.deliver(frame, essential=True)
            else:
                subscription.subscriber.deliver_message(self.thread_id, seq, frame)
                self._messages_out.inc()

    def _changed(self, frame: bytes, change_no: int) -> None:
        """An edit or a deletion, to every subscriber; a replaying one gets it after its
        replay, so it lands on the message the replay delivered (the client applies a change
        only over an older one, by `change_no`)."""
        self._last_change = max(self._last_change, change_no)
        delivered = 0
        for subscription in self._subs.values():
            if subscription.replaying:
                subscription.held.append((None, frame))
            else:
                subscription.subscriber.deliver(frame, essential=True)
                delivered += 1
        self._broadcast_out[protocol.MessageEdited].inc(delivered)  # edits and deletions

    def _set_typing(self, user_id: UUID, is_typing: bool) -> None:
        if user_id not in self._users:
            return
        was_typing = user_id in self._typing
        if is_typing:
            self._typing[user_id] = trio.current_time() + TYPING_EXPIRY_S
        else:
            self._typing.pop(user_id, None)
        if was_typing != is_typing:
            self._broadcast_typing(user_id, is_typing)

    def _expire_typing(self, now: float) -> None:
        for user_id in [u for u, expiry in self._typing.items() if expiry <= now]:
            del self._typing[user_id]
            self._broadcast_typing(user_id, False)
        # Typing on another node expires here too, should its node never say it stopped.
        for user_id in [u for u, expiry in self._remote_typing.items() if expiry <= now]:
            del self._remote_typing[user_id]
            self._broadcast_typing(user_id, False, publish=False)

    def _broadcast_typing(self, user_id: UUID, is_typing: bool, *, publish: bool = True) -> None:
        frame = event_frame(
            protocol.Typing(thread_id=self.thread_id, user_id=user_id, is_typing=is_typing)
        )
        self._broadcast(frame, protocol.Typing, essential=False, exclude_user=user_id)
        if publish:
            event = crossing.TypingChanged(self._origin, user_id, is_typing, frame)
            self._broker.publish(self.thread_id, event)

    def _set_status(self, user_id: UUID, status: str) -> None:
        """A status set by one of this node's sessions of the user."""
        shown = self._shown.get(user_id)
        if user_id not in self._users or shown is None or shown.status == status:
            return
        entry = self._shown[user_id] = msgspec.structs.replace(shown, status=status)
        frame = event_frame(
            protocol.Presence(thread_id=self.thread_id, user_id=user_id, status=status)  # type: ignore[arg-type]
        )
        self._broadcast(frame, protocol.Presence, essential=False)
        encoded = encode_entry(entry)
        self._broker.publish(
            self.thread_id, crossing.StatusChanged(self._origin, user_id, encoded, frame)
        )
        self._register(user_id)
        self._dirty_presence[user_id] = status
        self._presence_wakeup.set()

    # --- other nodes -----------------------------------------------------------------------------

    def _remote(self, event: crossing.ThreadEvent) -> None:
        match event:
            case crossing.MessageCommitted(seq=seq, frame=frame):
                if seq > self._delivered_seq:
                    self._pending.setdefault(seq, (frame, None))
                    self._drain_pending()
            case crossing.TypingChanged(user_id=user_id, is_typing=is_typing, frame=frame):
                if user_id in self._users:
                    return  # their sessions here report their typing here
                was_typing = user_id in self._remote_typing
                if is_typing:
                    self._remote_typing[user_id] = trio.current_time() + TYPING_EXPIRY_S
                else:
                    self._remote_typing.pop(user_id, None)
                if was_typing != is_typing:
                    self._broadcast(frame, protocol.Typing, essential=False, exclude_user=user_id)
            case crossing.ReceiptRead(frame=frame):
                self._broadcast(frame, protocol.ReadReceipt, essential=True)
            case crossing.Acknowledged(frame=frame):
                self._broadcast(frame, protocol.MessageAcknowledged, essential=True)
            case crossing.MessageChanged(frame=frame, change_no=change_no):
                self._changed(frame, change_no)
            case crossing.UserJoined(user_id=user_id, entry=entry, frame=frame):
                if user_id not in self._shown:
                    self._shown[user_id] = decode_entry(entry)
                    self._broadcast(frame, protocol.UserJoined, essential=False)
            case crossing.UserLeft(user_id=user_id, frame=frame):
                if user_id in self._users or self._shown.pop(user_id, None) is None:
                    return
                if self._remote_typing.pop(user_id, None) is not None:
                    self._broadcast_typing(user_id, False, publish=False)
                self._broadcast(frame, protocol.UserLeft, essential=False)
            case crossing.StatusChanged(user_id=user_id, entry=entry, frame=frame):
                shown = self._shown.get(user_id)
                decoded = decode_entry(entry)
                if shown is not None and shown.status == decoded.status:
                    return
                self._shown[user_id] = (
                    decoded
                    if shown is None
                    else msgspec.structs.replace(shown, status=decoded.status)
                )
                if shown is not None:
                    self._broadcast(frame, protocol.Presence, essential=False)
                if user_id in self._users:
                    self._register(user_id)

    def _resync(self) -> None:
        """After a (re)subscription: register this node's users again (a restarted Redis lost
        them), then reload who is present and the stored last seq."""
        if self._presence is not None:
            self._registered.clear()
            for user_id in self._users:
                self._register(user_id)
        assert self._nursery is not None
        self._nursery.start_soon(self._reload)

    def _reconcile_presence(self, entries: dict[UUID, protocol.PresenceEntry]) -> None:
        """Make what this node shows agree with the store, telling subscribers what changed."""
        for user_id, entry in entries.items():
            shown = self._shown.get(user_id)
            if shown is None:
                self._shown[user_id] = entry
                joined = event_frame(protocol.UserJoined(thread_id=self.thread_id, user=entry))
                self._broadcast(joined, protocol.UserJoined, essential=False)
            elif shown.status != entry.status and user_id not in self._users:
                self._shown[user_id] = entry
                frame = event_frame(
                    protocol.Presence(
                        thread_id=self.thread_id, user_id=user_id, status=entry.status
                    )
                )
                self._broadcast(frame, protocol.Presence, essential=False)
        for user_id in [u for u in self._shown if u not in entries and u not in self._users]:
            del self._shown[user_id]
            left = event_frame(protocol.UserLeft(thread_id=self.thread_id, user_id=user_id))
            self._broadcast(left, protocol.UserLeft, essential=False)

    def _register(self, user_id: UUID) -> None:
        """Have the registrar put this node's entry for the user in the presence store."""
        if self._presence is not None:
            self._want[user_id] = encode_entry(self._shown[user_id])
            self._registrar_wakeup.set()

    def _broadcast(
        self,
        frame: bytes,
        kind: type[protocol.ServerFrame],
        *,
        essential: bool,
        exclude_user: UUID | None = None,
        exclude_session: str | None = None,
    ) -> None:
        """`frame` (an event of type `kind`, counted once per broadcast) to every subscriber
        but those excluded."""
        delivered = 0
        for session_id, subscription in self._subs.items():
            subscriber = subscription.subscriber
            if session_id == exclude_session or subscriber.principal.user_id == exclude_user:
                continue
            subscriber.deliver(frame, essential=essential)
            delivered += 1
        self._broadcast_out[kind].inc(delivered)

    # --- gaps ------------------------------------------------------------------------------------

    def _check_gap(self, now: float) -> None:
        if self._gap_since is None or self._filling or now < self._gap_since + GAP_WAIT_S:
            return
        self._filling = True
        upto = min(self._pending) - 1 if self._pending else self._known_last
        assert self._nursery is not None
        self._nursery.start_soon(self._fill_gap, self._delivered_seq, upto)

    async def _fill_gap(self, after_seq: int, upto: int) -> None:
        frames: list[tuple[int, bytes]] = []
        try:
            for message in await self._store.messages_after(
                self.thread_id, after_seq, upto - after_seq
            ):
                frames.append((message.seq, await self._frame_of(message)))
        except HubError as exc:
            log.warning("thread %s: filling seq gap failed, will retry: %s", self.thread_id, exc)
        await self.inbox.send(_Filled(frames))

    # --- child tasks (they report back through the inbox) ----------------------------------------

    async def _store_message(self, post: Post) -> None:
        try:
            stored = await self._store.append(post.message, post.audit, post.authorize, post.timing)
        except HubError as exc:
            await self.inbox.send(_PostDone(post, None, exc))
        else:
            await self.inbox.send(_PostDone(post, stored, None))

    async def _replay(
        self, subscription: _Subscription, since_seq: int, upto: int, since_change: int | None
    ) -> None:
        error: HubError | None = None
        try:
            if since_change is not None:
                await self._replay_changes(subscription, since_seq, since_change)
            after = since_seq
            while after < upto:
                page = await self._store.messages_after(
                    self.thread_id, after, min(REPLAY_PAGE, upto - after)
                )
                if not page:
                    break  # retention removed the rest; the ack already said recovered: false
                for message in page:
                    if message.seq > upto:
                        break
                    frame = await self._frame_of(message)
                    await subscription.subscriber.deliver_replay(self.thread_id, message.seq, frame)
                    self._messages_out.inc()
                after = page[-1].seq
        except HubError as exc:
            error = exc
        await self.inbox.send(_ReplayDone(subscription, error))

    async def _replay_changes(
        self, subscription: _Subscription, upto_seq: int, since_change: int
    ) -> None:
        """The edits and deletions of messages the subscriber had (up to `upto_seq`) made
        after `since_change`, as their messages are now; later messages come whole."""
        after = since_change
        while True:
            page = await self._store.changed_since(self.thread_id, after, upto_seq, REPLAY_PAGE)
            for message in page:
                subscription.subscriber.deliver(change_frame(message), essential=True)
            if len(page) < REPLAY_PAGE:
                return
            after = page[-1].change_no

    async def _frame_of(self, message: Message) -> bytes:
        # A stored message carries its sender's name as it is now (an erased sender reads
        # "Erased user"), which wins over what this actor remembers from their posts and joins.
        name = message.sender_name or self._names.get(message.sender_user_id)
        if name is None:
            name = await self._store.user_name(message.sender_user_id)
            if len(self._names) > 10_000:
                self._names.clear()
            self._names[message.sender_user_id] = name
        out = protocol.LiveMessage(
            id=message.id,
            seq=message.seq,
            sender_id=message.sender_user_id,
            sender_name=name,
            org_id=message.sender_org_id,
            kind=message.kind,
            body=message.body,
            client_msg_id=message.client_msg_id,
            reply_to=message.reply_to,
            metadata=message.metadata,
            created_at=message.created_at,
            requires_ack=message.requires_ack,
            edited_at=message.edited_at,
            deleted_at=message.deleted_at,
            change_no=message.change_no,
            erased=message.erased,
        )
        return event_frame(protocol.NewMessage(thread_id=self.thread_id, message=out))

    async def _load_presence(self) -> dict[UUID, protocol.PresenceEntry] | None:
        """Who the cluster's presence store says is in the thread; None if it cannot say."""
        assert self._presence is not None
        try:
            entries = await self._presence.present(self.thread_id)
        except BrokerUnavailable:
            return None
        loaded: dict[UUID, protocol.PresenceEntry] = {}
        for user_id, data in entries.items():
            try:
                loaded[user_id] = decode_entry(data)
            except msgspec.DecodeError:
                log.warning("thread %s: dropped an unreadable presence entry", self.thread_id)
        return loaded

    async def _reload(self) -> None:
        entries = await self._load_presence() if self._presence is not None else None
        try:
            last_seq: int | None = await self._store.last_seq(self.thread_id)
        except HubError:
            last_seq = None  # the next seq check will tell
        await self.inbox.send(_Reloaded(entries, last_seq))

    async def _registrar(self) -> None:
        """This node's registrations in the presence store, one at a time and in order, so a
        leave never overtakes the join before it. A join the store reports as the user's first
        anywhere is announced to the other nodes; a leave that was their last is reported back
        to the actor, which tells everyone. With the store unreachable, this node's own view
        decides (presence is local until the broker is back, and `Resync` registers again)."""
        assert self._presence is not None
        while True:
            await self._registrar_wakeup.wait()
            self._registrar_wakeup = trio.Event()
            while self._want:
                user_id = next(iter(self._want))
                entry = self._want.pop(user_id)
                try:
                    await self._register_one(user_id, entry)
                except BrokerUnavailable:
                    if entry is None:
                        await self.inbox.send(_LeftEverywhere(user_id))

    async def _register_one(self, user_id: UUID, entry: bytes | None) -> None:
        assert self._presence is not None
        if entry is None:
            if self._registered.pop(user_id, None) is None:
                await self.inbox.send(_LeftEverywhere(user_id))  # never registered here
            elif await self._presence.leave(self.thread_id, user_id):
                await self.inbox.send(_LeftEverywhere(user_id))
            return
        if user_id in self._registered:
            if self._registered[user_id] != entry:
                await self._presence.set_entry(self.thread_id, user_id, entry)
                self._registered[user_id] = entry
            return
        first = await self._presence.join(self.thread_id, user_id, entry)
        self._registered[user_id] = entry
        if first:
            shown = decode_entry(entry)
            joined = event_frame(protocol.UserJoined(thread_id=self.thread_id, user=shown))
            self._broker.publish(
                self.thread_id, crossing.UserJoined(self._origin, user_id, entry, joined)
            )

    async def _presence_writer(self) -> None:
        """Persist presence changes, coalesced: one write per burst, whatever its size."""
        while True:
            await self._presence_wakeup.wait()
            self._presence_wakeup = trio.Event()
            await self._flush_presence()

    async def _flush_presence(self) -> None:
        if not self._dirty_presence:
            return
        statuses, self._dirty_presence = self._dirty_presence, {}
        try:
            await self._store.save_presence(self.thread_id, statuses)
        except HubError as exc:
            log.warning("thread %s: presence not saved: %s", self.thread_id, exc)

    async def _flush_presence_shielded(self) -> None:
        with trio.CancelScope(shield=True) as scope:
            scope.deadline = trio.current_time() + 2.0
            await self._flush_presence()


def change_frame(message: Message) -> bytes:
    """A stored message's last change as its event: `message_deleted` for a tombstone, else
    `message_edited` with its text as it is now."""
    if message.deleted_at is not None:
        deleted = protocol.MessageDeleted(
            thread_id=message.thread_id,
            seq=message.seq,
            id=message.id,
            deleted_at=message.deleted_at,
            by=message.deleted_by or message.sender_user_id,
            change_no=message.change_no,
        )
        return event_frame(deleted)
    assert message.edited_at is not None, "a changed message was edited or deleted"
    edited = protocol.MessageEdited(
        thread_id=message.thread_id,
        seq=message.seq,
        id=message.id,
        body=message.body,
        metadata=message.metadata,
        edited_at=message.edited_at,
        change_no=message.change_no,
    )
    return event_frame(edited)
