"""Actor logic on its own, with a fake store and trio's autojump clock: timeouts (typing expiry,
idle grace, heartbeats, token expiry, gap filling) run in milliseconds, with no sockets and no
database."""

from __future__ import annotations

import gc
import math
import time
import uuid
import weakref
from datetime import UTC, datetime

import msgspec
import trio

from hub import protocol
from hub.actors.session import OutgoingQueue
from hub.actors.thread import (
    CheckSeq,
    Post,
    Remote,
    SetTyping,
    Subscribe,
    ThreadActor,
    Unsubscribe,
)
from hub.actors.timers import Deadlines, SessionTimers
from hub.auth import Principal
from hub.broker import events as crossing
from hub.frames import event_frame, frame_payload
from hub.storage.records import Message, MessageDraft, StoredMessage

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def principal(name: str) -> Principal:
    return Principal(uuid.uuid4(), uuid.uuid4(), "vendor", name, 2e9)


class FakeStore:
    """Messages in a list; `append` can be held back to commit in any order."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.presence: dict[uuid.UUID, str] = {}
        self.gates: dict[str, trio.Event] = {}
        self.seq = 0

    async def last_seq(self, thread_id):
        return self.seq

    async def append(self, message: MessageDraft, audit=(), authorize=None, timing=None):
        self.seq += 1
        seq = self.seq
        self.messages.append(
            Message(
                id=seq,
                thread_id=message.thread_id,
                seq=seq,
                sender_user_id=message.sender_user_id,
                sender_org_id=message.sender_org_id,
                sender_name="someone",
                kind=message.kind,
                body=message.body,
                client_msg_id=message.client_msg_id,
                metadata={},
                created_at=NOW,
            )
        )
        gate = self.gates.get(message.client_msg_id)
        if gate is not None:
            await gate.wait()
        return StoredMessage(id=seq, thread_id=message.thread_id, seq=seq, created_at=NOW)

    async def messages_after(self, thread_id, after_seq, limit):
        return [m for m in self.messages if m.seq > after_seq][:limit]

    async def last_change(self, thread_id):
        return max((m.change_no for m in self.messages), default=0)

    async def changed_since(self, thread_id, since_change, upto_seq, limit):
        changed = [m for m in self.messages if m.change_no > since_change and m.seq <= upto_seq]
        return sorted(changed, key=lambda m: m.change_no)[:limit]

    async def user_name(self, user_id):
        return "someone"

    async def save_presence(self, thread_id, statuses):
        self.presence.update(statuses)


class FakeSubscriber:
    def __init__(self, name: str) -> None:
        self.session_id = name
        self.principal = principal(name)
        self.frames: list[dict] = []
        self.arrived = trio.Event()

    def _record(self, frame: bytes) -> None:
        self.frames.append(msgspec.json.decode(frame_payload(frame)))
        self.arrived.set()

    def deliver(self, frame, *, essential):
        self._record(frame)

    def deliver_message(self, thread_id, seq, frame):
        self._record(frame)

    async def deliver_replay(self, thread_id, seq, frame):
        self._record(frame)

    def joined(self, thread_id, last_seq):
        pass

    def cut_off(self):
        raise AssertionError("not expected")

    def subscription_lost(self, thread_id, error):
        raise AssertionError("not expected")

    async def wait_for(self, predicate):
        while not any(predicate(f) for f in self.frames):
            self.arrived = trio.Event()
            await self.arrived.wait()
        return next(f for f in self.frames if predicate(f))

    def seqs(self) -> list[int]:
        return [f["message"]["seq"] for f in self.frames if f["type"] == "new_message"]


def new_message(sender: FakeSubscriber, thread_id, body: str) -> MessageDraft:
    return MessageDraft(
        thread_id=thread_id,
        sender_user_id=sender.principal.user_id,
        sender_org_id=sender.principal.org_id,
        client_msg_id=body,
        body=body,
    )


async def start_actor(nursery, store, **kw) -> ThreadActor:
    return await nursery.start(ThreadActor(uuid.uuid4(), store, **kw).run)


async def test_typing_expires_after_six_seconds_without_a_refresh(autojump_clock):
    store = FakeStore()
    async with trio.open_nursery() as nursery:
        actor = await start_actor(nursery, store)
        alice, bob = FakeSubscriber("alice"), FakeSubscriber("bob")
        await actor.inbox.send(Subscribe(alice, "online"))
        await actor.inbox.send(Subscribe(bob, "online"))
        started = trio.current_time()
        await actor.inbox.send(SetTyping(alice.principal, True))
        await bob.wait_for(lambda f: f["type"] == "typing" and f["is_typing"])
        await bob.wait_for(lambda f: f["type"] == "typing" and not f["is_typing"])
        assert trio.current_time() - started >= 6.0
        nursery.cancel_scope.cancel()


async def test_an_idle_thread_actor_stops_after_its_grace_period(autojump_clock):
    store = FakeStore()
    stopped: list[ThreadActor] = []
    actor = ThreadActor(uuid.uuid4(), store, idle_s=30, on_idle=lambda a: stopped.append(a) or True)
    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run)
        alice = FakeSubscriber("alice")
        await actor.inbox.send(Subscribe(alice, "online"))
        await actor.inbox.send(Unsubscribe(alice.session_id))
    # The nursery only ends because the actor returned by itself.
    assert stopped == [actor]


async def test_commits_that_finish_out_of_order_are_delivered_in_seq_order(autojump_clock):
    store = FakeStore()
    store.gates["first"] = trio.Event()
    async with trio.open_nursery() as nursery:
        actor = await start_actor(nursery, store)
        watcher = FakeSubscriber("watcher")
        await actor.inbox.send(Subscribe(watcher, "online"))
        first, second = (
            Post(new_message(watcher, actor.thread_id, b), "w") for b in ("first", "second")
        )
        await actor.inbox.send(first)
        await actor.inbox.send(second)
        assert (await second.reply.wait(10)).seq == 2  # committed while seq 1 is held back
        assert watcher.seqs() == []
        store.gates["first"].set()
        await watcher.wait_for(lambda f: f.get("message", {}).get("seq") == 2)
        assert watcher.seqs() == [1, 2]
        nursery.cancel_scope.cancel()


async def test_a_seq_that_never_reports_back_is_read_from_storage(autojump_clock):
    store = FakeStore()
    store.gates["lost"] = trio.Event()  # its writer never returns
    async with trio.open_nursery() as nursery:
        actor = await start_actor(nursery, store)
        watcher = FakeSubscriber("watcher")
        await actor.inbox.send(Subscribe(watcher, "online"))
        await actor.inbox.send(Post(new_message(watcher, actor.thread_id, "lost"), "w"))
        await actor.inbox.send(Post(new_message(watcher, actor.thread_id, "next"), "w"))
        await watcher.wait_for(lambda f: f.get("message", {}).get("seq") == 2)
        assert watcher.seqs() == [1, 2]
        assert actor.stats.gaps_filled == 1
        nursery.cancel_scope.cancel()


async def test_messages_committed_during_a_replay_follow_it_without_gap_or_duplicate(
    autojump_clock,
):
    store = FakeStore()
    async with trio.open_nursery() as nursery:
        actor = await start_actor(nursery, store)
        sender = FakeSubscriber("sender")
        for i in range(5):
            post = Post(new_message(sender, actor.thread_id, f"old{i}"), "s")
            await actor.inbox.send(post)
            await post.reply.wait(10)

        class SlowReplay(FakeSubscriber):
            gate = trio.Event()

            async def deliver_replay(self, thread_id, seq, frame):
                await self.gate.wait()
                self._record(frame)

        late = SlowReplay("late")
        await actor.inbox.send(Subscribe(late, "online", since_seq=2))
        for i in range(3):  # live traffic while the replay is stuck
            post = Post(new_message(sender, actor.thread_id, f"new{i}"), "s")
            await actor.inbox.send(post)
            await post.reply.wait(10)
        late.gate.set()
        await late.wait_for(lambda f: f.get("message", {}).get("seq") == 8)
        assert late.frames[0]["type"] == "ack" and late.frames[0]["last_seq"] == 5
        assert late.seqs() == [3, 4, 5, 6, 7, 8]
        nursery.cancel_scope.cancel()


async def test_a_users_second_session_does_not_announce_them_again(autojump_clock):
    store = FakeStore()
    async with trio.open_nursery() as nursery:
        actor = await start_actor(nursery, store)
        watcher, phone, laptop = (
            FakeSubscriber("w"),
            FakeSubscriber("phone"),
            FakeSubscriber("laptop"),
        )
        laptop.principal = phone.principal
        for subscriber in (watcher, phone, laptop):
            await actor.inbox.send(Subscribe(subscriber, "online"))
        await actor.inbox.send(Unsubscribe(phone.session_id))
        await actor.inbox.send(Unsubscribe(laptop.session_id))
        await watcher.wait_for(lambda f: f["type"] == "user_left")
        kinds = [f["type"] for f in watcher.frames]
        assert kinds == ["ack", "user_joined", "user_left"]
        nursery.cancel_scope.cancel()
    assert store.presence[phone.principal.user_id] == "offline"


class TimedPeer:
    """A session as the timers see it, with a peer that answers `answers` pings (its pong a
    tenth of a second later) and then goes silent."""

    def __init__(self, nursery: trio.Nursery, answers: float = float("inf")) -> None:
        self._nursery = nursery
        self.answers = answers
        self.last_heard = trio.current_time()
        self.pings: list[float] = []
        self.timed_out: list[float] = []
        self.expired: list[float] = []
        self.closed: list[int] = []

    def ping(self) -> None:
        self.pings.append(trio.current_time())
        if len(self.pings) <= self.answers:
            self._nursery.start_soon(self._pong)

    async def _pong(self) -> None:
        await trio.sleep(0.1)
        self.last_heard = trio.current_time()

    def heartbeat_timed_out(self) -> None:
        self.timed_out.append(trio.current_time())

    def token_expired(self) -> None:
        self.expired.append(trio.current_time())

    def close(self, code: int, reason: str) -> None:
        self.closed.append(code)


async def start_timers(nursery: trio.Nursery) -> SessionTimers:
    timers = SessionTimers(interval_s=20, timeout_s=10)
    await nursery.start(timers.run)
    return timers


async def test_timers_ping_every_interval_and_time_out_when_no_pong_comes_back(autojump_clock):
    async with trio.open_nursery() as nursery:
        timers = await start_timers(nursery)
        started = trio.current_time()
        peer = TimedPeer(nursery, answers=2)
        timers.add(peer, time.time() + 3600)
        await trio.sleep(200)
        assert len(peer.pings) == 3
        # Each ping goes out an interval after the last pong (rounded up to the resolution).
        assert 20 <= peer.pings[0] - started < 21
        assert 20 <= peer.pings[1] - peer.pings[0] < 21.5
        assert 20 <= peer.pings[2] - peer.pings[1] < 21.5
        # The third is never answered: timed out once, a timeout after it, and no more pings.
        assert len(peer.timed_out) == 1
        assert 10 <= peer.timed_out[0] - peer.pings[2] < 11
        nursery.cancel_scope.cancel()


async def test_timers_do_not_ping_a_peer_that_keeps_talking(autojump_clock):
    async with trio.open_nursery() as nursery:
        timers = await start_timers(nursery)
        chatty = TimedPeer(nursery, answers=0)  # never pongs: only its frames keep it
        quiet = TimedPeer(nursery)
        timers.add(chatty, time.time() + 3600)
        timers.add(quiet, time.time() + 3600)
        for _ in range(60):  # five minutes, a frame every five seconds
            await trio.sleep(5)
            chatty.last_heard = trio.current_time()
        assert chatty.pings == [] and chatty.timed_out == []
        assert len(quiet.pings) >= 14 and quiet.timed_out == []
        # Once it falls silent it is pinged, and the unanswered ping times it out.
        await trio.sleep(60)
        assert len(chatty.pings) == 1 and len(chatty.timed_out) == 1
        nursery.cancel_scope.cancel()


async def test_a_token_expires_at_its_time_unless_refreshed(autojump_clock):
    async with trio.open_nursery() as nursery:
        timers = await start_timers(nursery)
        kept, dropped = TimedPeer(nursery), TimedPeer(nursery)
        timers.add(kept, time.time() + 100)
        timers.add(dropped, time.time() + 100)
        await trio.sleep(50)
        timers.set_expiry(kept, time.time() + 150)  # an `auth` refresh at 50 s, to 200 s
        await trio.sleep(40)  # 90 s
        assert kept.expired == [] and dropped.expired == []
        await trio.sleep(20)  # 110 s
        assert kept.expired == [] and len(dropped.expired) == 1
        await trio.sleep(80)  # 190 s
        assert kept.expired == []
        await trio.sleep(20)  # 210 s
        assert len(kept.expired) == 1 and len(dropped.expired) == 1
        nursery.cancel_scope.cancel()


async def test_a_session_removed_from_the_timers_is_forgotten(autojump_clock):
    async with trio.open_nursery() as nursery:
        timers = await start_timers(nursery)
        peers = [TimedPeer(nursery) for _ in range(3)]
        for peer in peers:
            timers.add(peer, time.time() + 30)
            for i in range(200):  # refreshed over and over
                timers.set_expiry(peer, time.time() + 30 + i)
        assert len(timers) == 3
        for peer in peers:
            timers.remove(peer)
        assert len(timers) == 0
        await trio.sleep(100)
        assert all(p.pings == [] and p.expired == [] for p in peers)
        # Nothing in the timers still refers to a removed session.
        gone = weakref.ref(peers[0])
        peers.clear()
        gc.collect()
        assert gone() is None
        # A refresh arriving after the session ended adds nothing.
        late = TimedPeer(nursery)
        timers.set_expiry(late, time.time() + 10)
        assert len(timers) == 0
        nursery.cancel_scope.cancel()


def test_moving_a_deadline_over_and_over_keeps_the_heap_bounded():
    deadlines: Deadlines[str] = Deadlines()
    for i in range(10_000):
        deadlines.set("refreshing", 1_000_000.0 - i)  # each move leaves a dead entry behind
    deadlines.set("other", 5.0)
    assert len(deadlines._heap) <= 2 * 2 + 64 + 1  # a private attribute: the bound is the point
    assert deadlines.pop_due(1.0) == []
    assert deadlines.pop_due(10.0) == ["other"]
    assert deadlines.pop_due(math.inf) == ["refreshing"]
    assert len(deadlines) == 0


async def test_a_session_whose_timer_callback_fails_is_closed_and_the_others_keep_time(
    autojump_clock,
):
    class Broken(TimedPeer):
        def ping(self) -> None:
            raise RuntimeError("bug")

    async with trio.open_nursery() as nursery:
        timers = await start_timers(nursery)
        broken, healthy = Broken(nursery), TimedPeer(nursery)
        timers.add(broken, time.time() + 3600)
        timers.add(healthy, time.time() + 3600)
        await trio.sleep(100)
        assert broken.closed == [protocol.CLOSE_INTERNAL]
        assert len(timers) == 1
        assert len(healthy.pings) >= 4 and healthy.timed_out == []
        nursery.cancel_scope.cancel()


def test_a_full_outgoing_queue_sheds_ephemeral_events_before_messages():
    queue = OutgoingQueue(capacity=2)
    assert queue.put(b"typing", essential=False)
    assert queue.put(b"message 1", essential=True)
    assert queue.put(b"presence", essential=False)  # shed: full
    assert queue.put(b"message 2", essential=True)  # evicts "typing"
    assert queue.shed == 2
    assert not queue.put(b"message 3", essential=True)  # nothing left to shed: cut off


async def test_the_writer_takes_the_whole_backlog_in_order_within_its_byte_budget():
    queue = OutgoingQueue(capacity=10)
    for frame in (b"aaaa", b"bbbb", b"cccc", b"dddd"):
        queue.put(frame, essential=True)
    assert await queue.get(max_bytes=10) == b"aaaabbbb"
    assert await queue.get(max_bytes=10) == b"ccccdddd"
    queue.put(b"a frame larger than the budget", essential=True)
    queue.put(b"e", essential=True)
    assert await queue.get(max_bytes=4) == b"a frame larger than the budget"
    queue.close(drop=False)
    assert await queue.get(max_bytes=4) == b"e"
    assert await queue.get(max_bytes=4) is None


async def test_the_rest_of_a_partly_written_frame_goes_out_first_and_survives_a_dropping_close():
    queue = OutgoingQueue(capacity=10)
    queue.put_rest(b"-end of frame 1")
    assert len(queue) == 1  # the queue is not empty: nothing may be written from the side
    queue.put(b"frame 2", essential=True)
    queue.put_first(b"ping")
    assert await queue.get() == b"-end of frame 1pingframe 2"

    queue.put_rest(b"-end of frame 3")
    queue.put(b"frame 4", essential=True)
    queue.close(drop=True)  # a slow consumer: its backlog goes, the frame on the wire is finished
    assert await queue.get() == b"-end of frame 3"
    assert await queue.get() is None


async def test_typing_on_another_node_expires_here_if_that_node_never_says_it_stopped(
    autojump_clock,
):
    store = FakeStore()
    async with trio.open_nursery() as nursery:
        actor = await start_actor(nursery, store)
        bob = FakeSubscriber("bob")
        await actor.inbox.send(Subscribe(bob, "online"))
        typist = uuid.uuid4()
        frame = event_frame(
            protocol.Typing(thread_id=actor.thread_id, user_id=typist, is_typing=True)
        )
        started = trio.current_time()
        await actor.inbox.send(Remote(crossing.TypingChanged("node-b", typist, True, frame)))
        await bob.wait_for(lambda f: f["type"] == "typing" and f["is_typing"])
        stopped = await bob.wait_for(lambda f: f["type"] == "typing" and not f["is_typing"])
        waited = trio.current_time() - started
        nursery.cancel_scope.cancel()

    assert stopped["user_id"] == str(typist)
    assert waited >= 6.0


async def test_a_message_committed_elsewhere_is_read_back_when_two_seq_checks_report_it(
    autojump_clock,
):
    store = FakeStore()
    async with trio.open_nursery() as nursery:
        actor = await start_actor(nursery, store)
        bob = FakeSubscriber("bob")
        await actor.inbox.send(Subscribe(bob, "online"))
        # Another node stored seq 1; its publish never arrived.
        writer = FakeSubscriber("alice")
        await store.append(new_message(writer, actor.thread_id, "stored on node A"))
        await actor.inbox.send(CheckSeq(store.seq))
        await trio.sleep(5)  # one report may be a message still on its way: nothing read yet
        before = bob.seqs()
        await actor.inbox.send(CheckSeq(store.seq))  # the next round: still missing, read it
        message = await bob.wait_for(lambda f: f["type"] == "new_message")
        nursery.cancel_scope.cancel()

    assert before == []
    assert (message["message"]["seq"], message["message"]["body"]) == (1, "stored on node A")
    assert bob.seqs() == [1]


async def test_a_message_from_another_node_already_delivered_is_not_delivered_again(
    autojump_clock,
):
    store = FakeStore()
    async with trio.open_nursery() as nursery:
        actor = await start_actor(nursery, store)
        alice, bob = FakeSubscriber("alice"), FakeSubscriber("bob")
        await actor.inbox.send(Subscribe(bob, "online"))
        post = Post(new_message(alice, actor.thread_id, "local"), "Alice")
        await actor.inbox.send(post)
        stored = await post.reply.wait(5)
        await bob.wait_for(lambda f: f["type"] == "new_message")
        # The same seq arriving from elsewhere (a fill raced the publish): dropped.
        duplicate = event_frame(protocol.Pong(ref="not a message"))
        await actor.inbox.send(Remote(crossing.MessageCommitted("node-b", stored.seq, duplicate)))
        await trio.sleep(1)
        nursery.cancel_scope.cancel()

    assert bob.seqs() == [1] and len(bob.frames) == 2  # the ack and the one message
