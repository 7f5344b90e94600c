"""Presence, typing and read receipts between two users over real sockets."""

from __future__ import annotations

from hub import client as hub_client
from hub import protocol
from hub.storage.groups import get_group
from tests.factories import new_thread
from tests.queries import read_receipts, thread_presence


async def test_a_joining_user_is_announced_to_the_others_and_listed_in_the_ack(world, alice, bob):
    await alice.join(world.thread.id)
    ack = await bob.join(world.thread.id)
    assert {p.user_id for p in ack.presence} == {world.alice.user_id, world.bob.user_id}
    joined = await alice.next_event(protocol.UserJoined)
    assert (joined.user.user_id, joined.user.name) == (world.bob.user_id, "Bob Photographer")
    assert joined.user.org_id == world.bob.org_id and joined.user.status == "online"


async def test_typing_reaches_the_other_user(world, alice, bob):
    await alice.join(world.thread.id)
    await bob.join(world.thread.id)
    await bob.typing(world.thread.id, True)
    typing = await alice.next_event(protocol.Typing)
    assert (typing.user_id, typing.is_typing) == (world.bob.user_id, True)
    await bob.typing(world.thread.id, False)
    stopped = await alice.next_event(protocol.Typing)
    assert stopped.is_typing is False


async def test_a_presence_update_reaches_every_thread_the_user_joined(world, alice, bob):
    """Every thread any of the user's sessions joined: here one on the laptop, one on the phone."""
    group = await world.hub.storage.read(get_group(world.thread.group_id))
    other = await new_thread(world.hub.storage, group, world.alice, title="Catering")
    for thread_id in (world.thread.id, other.id):
        await alice.join(thread_id)
    async with hub_client.connect(world.hub.ws_url, world.bob.token) as bob_phone:
        await bob.join(world.thread.id)
        await bob_phone.join(other.id)

        ack = await bob.set_presence("busy")
        heard = [await alice.next_event(protocol.Presence) for _ in range(2)]

    assert ack.status == "busy"
    assert {(p.thread_id, p.user_id, p.status) for p in heard} == {
        (world.thread.id, world.bob.user_id, "busy"),
        (other.id, world.bob.user_id, "busy"),
    }


async def test_a_read_mark_is_persisted_and_reaches_the_others(world, alice, bob):
    await alice.join(world.thread.id)
    await bob.join(world.thread.id)
    await alice.send(world.thread.id, "Menu final")
    ack = await bob.mark_read(world.thread.id, 1)
    assert ack.seq == 1
    receipt = await alice.next_event(protocol.ReadReceipt)
    assert (receipt.user_id, receipt.seq) == (world.bob.user_id, 1)
    [stored] = await world.hub.storage.read(read_receipts(world.thread.id))
    assert (stored.user_id, stored.last_read_seq) == (world.bob.user_id, 1)


async def test_leaving_a_thread_is_acknowledged_and_announced(world, alice, bob):
    await alice.join(world.thread.id)
    await bob.join(world.thread.id)
    ack = await bob.leave(world.thread.id)
    assert ack.thread_id == world.thread.id
    left = await alice.next_event(protocol.UserLeft)
    assert left.user_id == world.bob.user_id


async def test_a_second_session_of_a_user_is_not_announced_again(world, alice, bob):
    await alice.join(world.thread.id)
    await bob.join(world.thread.id)
    await alice.next_event(protocol.UserJoined)
    async with hub_client.connect(world.hub.ws_url, world.bob.token) as bob_phone:
        await bob_phone.join(world.thread.id)
        await bob_phone.send(world.thread.id, "marker")
        # The next thing alice hears is the marker: no second user_joined came before it.
        assert isinstance(await alice.next_event(), protocol.NewMessage)
    await bob.send(world.thread.id, "still here")
    event = await alice.next_event()
    assert isinstance(event, protocol.NewMessage) and event.message.body == "still here"


async def test_a_user_is_gone_and_offline_only_when_their_last_socket_closes(world, alice):
    await alice.join(world.thread.id)
    async with hub_client.connect(world.hub.ws_url, world.bob.token) as bob:
        await bob.join(world.thread.id)
    left = await alice.next_event(protocol.UserLeft)
    assert left.user_id == world.bob.user_id
    # The actor saves presence in the background; a round trip through it orders us after.
    await alice.leave(world.thread.id)
    await alice.join(world.thread.id)
    presence = {
        p.user_id: p.status for p in await world.hub.storage.read(thread_presence(world.thread.id))
    }
    while presence.get(world.bob.user_id) != "offline":
        await alice.ping()
        presence = {
            p.user_id: p.status
            for p in await world.hub.storage.read(thread_presence(world.thread.id))
        }
    assert presence[world.bob.user_id] == "offline"


async def test_typing_in_a_thread_not_joined_is_refused(world, alice):
    await alice.send_raw(
        protocol.encode(
            protocol.TypingIndicator(thread_id=world.thread.id, is_typing=True, ref="t1")
        )
    )
    error = await alice.next_event(protocol.Error)
    assert (error.code, error.ref) == ("invalid", "t1")


async def test_ping_is_answered_with_pong(world, alice):
    pong = await alice.ping()
    assert isinstance(pong, protocol.Pong) and pong.ref is not None
