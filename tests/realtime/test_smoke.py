from hub import protocol


async def test_two_users_see_each_others_messages(world, alice, bob):
    await alice.join(world.thread.id)
    await bob.join(world.thread.id)
    ack = await alice.send(world.thread.id, "Tent at 3pm")
    assert ack.message.seq == 1
    [message] = await bob.drain(world.thread.id, 1)
    assert message.body == "Tent at 3pm"
    assert message.sender_name == "Alice Planner"
    event = await alice.next_event(protocol.NewMessage)
    assert event.message.seq == 1
