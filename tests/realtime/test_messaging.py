"""Messages over real sockets: acks after commit, fan-out, order, exactly once, REST routing."""

from __future__ import annotations

import pytest
import trio

from hub import client as hub_client
from hub import protocol
from hub.errors import StorageUnavailable
from hub.storage.groups import get_group
from hub.storage.messages import count_messages
from hub.storage.records import MessageDraft
from hub.storage.sql import execute
from tests.factories import new_thread


async def test_a_sent_message_is_acknowledged_only_once_it_is_stored(world, alice):
    ack = await alice.send(world.thread.id, "Tent at 3pm")
    [stored] = await world.hub.storage.messages(world.thread.id)
    assert (stored.id, stored.seq, stored.body) == (ack.message.id, ack.message.seq, "Tent at 3pm")


async def test_every_subscriber_gets_the_message_including_the_senders_other_sessions(
    world, alice, bob
):
    async with hub_client.connect(world.hub.ws_url, world.alice.token) as alice_phone:
        for client in (alice, alice_phone, bob):
            await client.join(world.thread.id)
        await alice.send(world.thread.id, "Cake arrives at 5", metadata={"table": 4})
        for client in (alice, alice_phone, bob):
            [message] = await client.drain(world.thread.id, 1)
            assert message.body == "Cake arrives at 5"
            assert message.metadata == {"table": 4}
            assert message.sender_id == world.alice.user_id
            assert message.org_id == world.alice.org_id


async def test_a_repeated_client_msg_id_gets_the_original_ack_and_no_second_message(
    world, alice, bob
):
    await bob.join(world.thread.id)
    first = await alice.send(world.thread.id, "Tent at 3pm", client_msg_id="m-1")
    again = await alice.send(world.thread.id, "Tent at 3pm", client_msg_id="m-1")
    assert again.message.id == first.message.id
    assert again.duplicate is True
    await alice.send(world.thread.id, "marker")
    messages = await bob.drain(world.thread.id, 2)
    assert [m.body for m in messages] == ["Tent at 3pm", "marker"]


async def test_a_client_msg_id_reused_in_another_thread_is_a_new_message_there(world, alice, bob):
    group = await world.hub.storage.read(get_group(world.thread.group_id))
    other = await new_thread(world.hub.storage, group, world.alice, title="Catering")
    for thread_id in (world.thread.id, other.id):
        await bob.join(thread_id)

    first = await alice.send(world.thread.id, "Tent at 3pm", client_msg_id="m-1")
    [in_first] = await bob.drain(world.thread.id, 1)
    second = await alice.send(other.id, "Menu is final", client_msg_id="m-1")
    again = await alice.send(other.id, "Menu is final", client_msg_id="m-1")
    marker = await alice.send(other.id, "marker")
    in_other = await bob.drain(other.id, marker.message.seq)

    assert (first.duplicate, second.duplicate) == (None, None)
    assert second.message.id != first.message.id
    assert (again.message.id, again.duplicate) == (second.message.id, True)
    assert in_first.body == "Tent at 3pm"
    assert [m.body for m in in_other] == ["Menu is final", "marker"]
    assert [m.body for m in await world.hub.storage.messages(other.id)] == [
        "Menu is final",
        "marker",
    ]


async def test_concurrent_senders_are_delivered_once_each_in_seq_order(world, alice, bob):
    async with hub_client.connect(world.hub.ws_url, world.bob.token) as watcher:
        await watcher.join(world.thread.id)
        per_sender = 40

        async def flood(client, name):
            for i in range(per_sender):
                await client.send(world.thread.id, f"{name}-{i}")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(flood, alice, "alice")
            nursery.start_soon(flood, bob, "bob")
        total = 2 * per_sender
        messages = await watcher.drain(world.thread.id, total)
        assert [m.seq for m in messages] == list(range(1, total + 1))
        for name in ("alice", "bob"):
            mine = [m.body for m in messages if m.body.startswith(name)]
            assert mine == [f"{name}-{i}" for i in range(per_sender)]  # each sender's order kept


async def test_a_message_posted_through_the_router_arrives_live(world, bob):
    await bob.join(world.thread.id)
    router = world.hub.supervisor.router
    stored = await router.post(
        world.alice.principal,
        MessageDraft(
            thread_id=world.thread.id,
            sender_user_id=world.alice.user_id,
            sender_org_id=world.alice.org_id,
            client_msg_id="rest-1",
            body="Posted over REST",
        ),
    )
    [message] = await bob.drain(world.thread.id, stored.seq)
    assert message.body == "Posted over REST"


async def test_a_message_the_database_could_not_store_gets_an_error_and_no_ack(
    world, alice, bob, monkeypatch
):
    await bob.join(world.thread.id)

    async def unavailable(message, **kw):
        raise StorageUnavailable("the database is unavailable; nothing was stored")

    monkeypatch.setattr(world.hub.storage, "append_message", unavailable)
    with pytest.raises(hub_client.HubClientError) as caught:
        await alice.send(world.thread.id, "lost?")
    assert caught.value.code == "storage_unavailable"
    monkeypatch.undo()
    await alice.send(world.thread.id, "stored")
    [message] = await bob.drain(world.thread.id, 1)
    assert message.body == "stored"


async def test_a_late_joiner_with_since_seq_gets_the_missed_messages_then_live_ones(world, alice):
    for i in range(5):
        await alice.send(world.thread.id, f"early {i}")
    async with hub_client.connect(world.hub.ws_url, world.bob.token) as bob:
        ack = await bob.join(world.thread.id, since_seq=2)
        assert ack.last_seq == 5 and ack.recovered is True
        await alice.send(world.thread.id, "live")
        messages = await bob.drain(world.thread.id, 6)
        assert [m.seq for m in messages] == [3, 4, 5, 6]
        assert messages[-1].body == "live"


async def test_a_join_whose_history_is_gone_says_it_was_not_recovered(world, alice):
    for i in range(3):
        await alice.send(world.thread.id, f"note {i}")

    def retention():  # what a retention job does: delete the oldest messages
        from hub.storage.sql import execute

        yield execute(
            "DELETE FROM thread_messages WHERE thread_id = $1 AND seq <= 2", world.thread.id
        )

    await world.hub.storage.write(lambda now: retention())
    async with hub_client.connect(world.hub.ws_url, world.bob.token) as bob:
        ack = await bob.join(world.thread.id, since_seq=0)
        assert ack.recovered is False
        [message] = await bob.drain(world.thread.id, 3)
        assert message.seq == 3


async def test_a_join_after_retention_deleted_every_message_says_it_was_not_recovered(world, alice):
    for i in range(3):
        await alice.send(world.thread.id, f"note {i}")

    def retention():  # every message of the thread is past its retention
        yield execute("DELETE FROM thread_messages WHERE thread_id = $1", world.thread.id)

    await world.hub.storage.write(lambda now: retention())
    async with hub_client.connect(world.hub.ws_url, world.bob.token) as bob:
        ack = await bob.join(world.thread.id, since_seq=1)
        marker = await alice.send(world.thread.id, "after retention")
        messages = await bob.drain(world.thread.id, marker.message.seq)

    assert (ack.recovered, ack.last_seq) == (False, 3)
    # Nothing was left to replay: the first message the socket gets is the live one.
    assert [(m.seq, m.body) for m in messages] == [(4, "after retention")]


async def test_a_join_from_the_last_seq_of_an_emptied_thread_is_recovered(world, alice):
    """Retention took messages the client already has: it missed nothing."""
    for i in range(2):
        await alice.send(world.thread.id, f"note {i}")

    def retention():
        yield execute("DELETE FROM thread_messages WHERE thread_id = $1", world.thread.id)

    await world.hub.storage.write(lambda now: retention())
    async with hub_client.connect(world.hub.ws_url, world.bob.token) as bob:
        ack = await bob.join(world.thread.id, since_seq=2)

    assert (ack.recovered, ack.last_seq) == (True, 2)


async def test_a_kill_of_the_client_side_mid_stream_loses_nothing_and_duplicates_nothing(
    world, alice
):
    total = 60
    async with hub_client.connect(world.hub.ws_url, world.bob.token) as bob:
        await bob.join(world.thread.id)
        received: list[int] = []

        async def sender():
            for i in range(total):
                await alice.send(world.thread.id, f"m{i}")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(sender)
            async for event in bob.events():
                if isinstance(event, protocol.NewMessage):
                    received.append(event.message.seq)
                    if len(received) == 10:
                        await bob.drop_connection()  # the socket dies mid-stream
                    if event.message.seq == total:
                        break
        assert received == list(range(1, total + 1))
        assert bob.connects == 2


async def test_sends_queued_while_disconnected_are_flushed_once_after_reconnecting(world, alice):
    async with hub_client.connect(world.hub.ws_url, world.bob.token) as bob:
        await bob.join(world.thread.id)
        await alice.join(world.thread.id)
        await bob.drop_connection()
        acks = []
        async with trio.open_nursery() as nursery:
            for i in range(3):
                nursery.start_soon(lambda i=i: _append(acks, bob.send(world.thread.id, f"q{i}")))
        assert sorted(a.message.seq for a in acks) == [1, 2, 3]
        messages = await alice.drain(world.thread.id, 3)
        assert sorted(m.body for m in messages) == ["q0", "q1", "q2"]
        assert await world.hub.storage.read(count_messages(world.thread.id)) == 3


async def _append(into: list, awaitable) -> None:
    into.append(await awaitable)


async def test_a_crashed_thread_actor_is_restarted_and_its_subscribers_keep_receiving(
    world, alice, bob, monkeypatch
):
    from hub.actors import thread as thread_module

    await bob.join(world.thread.id)
    await alice.send(world.thread.id, "before")
    supervisor = world.hub.supervisor
    actor = supervisor.threads.running(world.thread.id)

    original = thread_module.ThreadActor._set_typing

    def explode(self, user_id, is_typing):
        raise RuntimeError("boom")

    monkeypatch.setattr(thread_module.ThreadActor, "_set_typing", explode)
    await alice.join(world.thread.id)
    await alice.typing(world.thread.id)
    while supervisor.stats.actor_crashes == 0:
        await alice.ping()  # a round trip per check, until the actor has met the typing
    monkeypatch.setattr(thread_module.ThreadActor, "_set_typing", original)
    ack = await alice.send(world.thread.id, "after")
    messages = await bob.drain(world.thread.id, ack.message.seq)
    assert [m.body for m in messages] == ["before", "after"]
    assert supervisor.stats.actor_crashes == 1
    assert supervisor.threads.running(world.thread.id) is not actor
