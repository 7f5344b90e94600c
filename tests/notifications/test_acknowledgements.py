"""Acknowledgements over real sockets, both backends: a change of plan asks every other member
organization, the board lists them, and a confirmation over either door turns the board, reaches
the thread's subscribers live, ends the organization's reminders and is audited once."""

from __future__ import annotations

import trio

from hub import client as hub_client
from hub import protocol
from hub.storage.threads import archive_thread
from tests.notifications.conftest import Wedding


def board_states(board: dict) -> dict[str, tuple[str, str | None]]:
    return {e["org_name"]: (e["state"], e["user_name"]) for e in board["organizations"]}


async def board_of(wedding: Wedding, seq: int, member=None) -> dict:
    reply = await wedding.rest.call(
        "GET",
        f"/threads/{wedding.thread.id}/messages/{seq}/acknowledgements",
        member or wedding.planner,
    )
    assert reply.status == 200, reply.body
    return reply.json


async def ack(wedding: Wedding, member, seq: int):
    return await wedding.rest.call(
        "POST", f"/threads/{wedding.thread.id}/messages/{seq}/ack", member
    )


async def test_a_change_asks_every_other_organization_to_acknowledge(wedding: Wedding):
    reply = await wedding.post(wedding.planner, "Ceremony moves to 3 pm: rain", kind="change")
    assert reply.status == 201, reply.body
    seq = reply.json["seq"]

    page = await wedding.rest.call("GET", f"/threads/{wedding.thread.id}", wedding.dj)
    [message] = page.json["messages"]
    assert (message["kind"], message["requires_ack"]) == ("change", True)

    board = await board_of(wedding, seq, wedding.dj)
    assert board_states(board) == {
        "Petal Planning": ("sender", None),
        "Bloom & Co": ("pending", None),
        "Beat Box": ("pending", None),
    }
    assert board["pending"] == 2

    requests = await wedding.rows(
        "SELECT organization_id, state, next_at, reminders_sent FROM ack_requests"
    )
    assert {r["organization_id"] for r in requests} == {wedding.florist.org_id, wedding.dj.org_id}
    assert all(r["state"] == "pending" and r["next_at"] is not None for r in requests)
    # Nobody was named, so every user of each organization asked is told; the sender's own
    # organization is not asked.
    for member in (wedding.florist, wedding.florist_admin, wedding.dj):
        [note] = await wedding.notifications_of(member)
        assert (note["reason"], note["seq"]) == ("ack_request", seq)
        assert [d["channel"] for d in await wedding.deliveries_of(member)] == ["in_app"]
    assert await wedding.notifications_of(wedding.planner) == []


async def test_a_confirmation_turns_the_board_and_reaches_subscribers(wedding: Wedding):
    seq = (await wedding.post(wedding.planner, "Arch goes up at noon", kind="change")).json["seq"]
    async with hub_client.connect(wedding.hub.ws_url, wedding.planner.token) as planner:
        await planner.join(wedding.thread.id)

        first = await ack(wedding, wedding.florist, seq)
        assert first.status == 201, first.body
        assert first.json["duplicate"] is False
        assert first.json["org_id"] == str(wedding.florist.org_id)
        assert (first.json["user_name"], first.json["org_name"]) == ("Flora Green", "Bloom & Co")

        event = await planner.next_event(protocol.MessageAcknowledged)
        assert (event.thread_id, event.seq) == (wedding.thread.id, seq)
        assert (event.org_id, event.user_id) == (wedding.florist.org_id, wedding.florist.user_id)
        # Named, so a board can say who without asking again.
        assert (event.user_name, event.org_name) == ("Flora Green", "Bloom & Co")

        # The shop's admin confirms too: the shop had confirmed, so that earlier confirmation
        # comes back, and nobody hears of it twice.
        again = await ack(wedding, wedding.florist_admin, seq)
        assert again.status == 200
        assert again.json["duplicate"] is True
        assert again.json["user_id"] == str(wedding.florist.user_id)
        assert again.json["user_name"] == "Flora Green"

        board = await board_of(wedding, seq)
        assert board_states(board)["Bloom & Co"] == ("acknowledged", "Flora Green")
        assert board_states(board)["Beat Box"] == ("pending", None)
        assert board["pending"] == 1

        # The DJ confirms over the socket door: the same outcome.
        async with hub_client.connect(wedding.hub.ws_url, wedding.dj.token) as dj:
            reply = await dj.acknowledge(wedding.thread.id, seq)
            assert (reply.seq, reply.duplicate) == (seq, None)
            again = await dj.acknowledge(wedding.thread.id, seq)
            assert again.duplicate is True
        event = await planner.next_event(protocol.MessageAcknowledged)
        assert (event.org_id, event.user_name, event.org_name) == (
            wedding.dj.org_id,
            "Dee Jay",
            "Beat Box",
        )
        with trio.move_on_after(0.5):
            extra = await planner.next_event(protocol.MessageAcknowledged)
            raise AssertionError(f"a repeated confirmation was announced again: {extra}")

    assert (await board_of(wedding, seq))["pending"] == 0
    # Announcing them did not take the thread's actor down (it once did, after delivering).
    assert wedding.hub.supervisor is not None
    assert wedding.hub.supervisor.stats.actor_crashes == 0
    states = await wedding.rows("SELECT state, next_at FROM ack_requests")
    assert [(r["state"], r["next_at"]) for r in states] == [("acknowledged", None)] * 2
    audited = await wedding.rows(
        "SELECT actor_user_id, group_id, details FROM vendor_communication_audit "
        "WHERE action = 'message.acknowledge'"
    )
    assert {r["actor_user_id"] for r in audited} == {wedding.florist.user_id, wedding.dj.user_id}
    assert {r["group_id"] for r in audited} == {wedding.group.id}


async def test_any_message_may_ask_for_acknowledgement_over_either_door(wedding: Wedding):
    reply = await wedding.post(wedding.planner, "Please confirm arrival times", requires_ack=True)
    assert reply.status == 201
    async with hub_client.connect(wedding.hub.ws_url, wedding.dj.token) as dj:
        await dj.join(wedding.thread.id)
        sent = await dj.send(wedding.thread.id, "Van is booked for 1 pm", requires_ack=True)
        event = await dj.next_event(protocol.NewMessage)
        while event.message.seq != sent.message.seq:
            event = await dj.next_event(protocol.NewMessage)
        assert event.message.requires_ack is True
    board = await board_of(wedding, sent.message.seq)
    assert board_states(board)["Beat Box"] == ("sender", None)
    assert board_states(board)["Petal Planning"] == ("pending", None)
    plain = await wedding.post(wedding.planner, "Thanks all")
    page = await wedding.rest.call("GET", f"/threads/{wedding.thread.id}", wedding.florist)
    flags = {m["seq"]: m["requires_ack"] for m in page.json["messages"]}
    assert flags == {reply.json["seq"]: True, sent.message.seq: True, plain.json["seq"]: False}


async def test_refusals_name_the_problem(wedding: Wedding):
    change = (await wedding.post(wedding.planner, "Cake at 6", kind="change")).json["seq"]
    plain = (await wedding.post(wedding.planner, "Just chatting")).json["seq"]
    tid = wedding.thread.id

    reply = await ack(wedding, wedding.florist, plain)
    assert reply.status == 400
    assert "does not ask for acknowledgement" in reply.json["error"]["message"]
    reply = await ack(wedding, wedding.planner, change)
    assert reply.status == 400
    assert "sent by your organization" in reply.json["error"]["message"]
    for member in (wedding.outsider,):
        assert (await ack(wedding, member, change)).status == 404
        board = await wedding.rest.call(
            "GET", f"/threads/{tid}/messages/{change}/acknowledgements", member
        )
        assert board.status == 404
    assert (await ack(wedding, wedding.florist, 999)).status == 404
    bad = await wedding.rest.call("POST", f"/threads/{tid}/messages/zero/ack", wedding.florist)
    assert bad.status == 422
    assert "seq" in bad.body.decode()
    empty = await wedding.post(wedding.planner, "   ", kind="change")
    assert empty.status == 422
    assert "change message" in empty.json["error"]["message"]

    async with hub_client.connect(wedding.hub.ws_url, wedding.florist.token) as florist:
        try:
            await florist.acknowledge(tid, plain)
        except hub_client.HubClientError as exc:
            assert exc.code == "invalid"
            assert "does not ask for acknowledgement" in str(exc)
        else:
            raise AssertionError("a message that asked for nothing was acknowledged")

    await wedding.hub.storage.write(lambda now: archive_thread(tid, now))
    reply = await ack(wedding, wedding.florist, change)
    assert reply.status == 409
    # Nothing was recorded by any refusal.
    assert await wedding.rows("SELECT * FROM message_acknowledgements") == []
