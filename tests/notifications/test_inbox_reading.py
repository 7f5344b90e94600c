"""Reading notifications, both backends: reading a thread reads what it notified, a mark made
on one device reaches every socket of the user (`notifications_read`), and a thread's
notifications can be marked read at once over REST, without touching anyone else's."""

from __future__ import annotations

import trio

from hub import client as hub_client
from hub import protocol
from tests.factories import new_thread
from tests.notifications.conftest import Wedding


async def unread_of(wedding: Wedding, member) -> dict[int, object]:
    """The member's notifications by id, with when each was read (None: unread)."""
    rows = await wedding.rows(
        "SELECT id, read_at FROM user_notifications WHERE user_id = $1", member.user_id
    )
    return {r["id"]: r["read_at"] for r in rows}


async def test_reading_a_thread_reads_its_notifications_on_every_device(wedding: Wedding):
    async with (
        hub_client.connect(wedding.hub.ws_url, wedding.florist.token) as phone,
        hub_client.connect(wedding.hub.ws_url, wedding.florist.token) as laptop,
    ):
        first = await wedding.post(wedding.planner, "@Flora Green is the arch ready?")
        second = await wedding.post(wedding.planner, "@Flora Green and the petals?")
        assert first.status == second.status == 201
        seqs = [first.json["seq"], second.json["seq"]]
        # The live nudge says which wedding, so a bell can show it without asking.
        for _ in seqs:
            note = await laptop.next_event(protocol.Notification)
            assert (note.group_id, note.group_name) == (wedding.group.id, "Rivera & Chen")
            assert note.thread_title == "Ceremony timeline"
        notes = await unread_of(wedding, wedding.florist)
        assert len(notes) == 2 and all(v is None for v in notes.values())
        admin_before = await unread_of(wedding, wedding.florist_admin)

        # The phone reads up to the first message: that notification is read, the second not,
        # and both devices hear of it with the count after.
        ack = await phone.mark_read(wedding.thread.id, seqs[0])
        assert ack.seq == seqs[0]
        by_seq = {
            r["seq"]: r["id"]
            for r in await wedding.rows(
                "SELECT id, seq FROM user_notifications WHERE user_id = $1", wedding.florist.user_id
            )
        }
        for device in (phone, laptop):
            event = await device.next_event(protocol.NotificationsRead)
            assert (event.ids, event.unread_count, event.all) == ([by_seq[seqs[0]]], 1, False)
        notes = await unread_of(wedding, wedding.florist)
        assert notes[by_seq[seqs[0]]] is not None and notes[by_seq[seqs[1]]] is None

        # Reading the same again changes nothing, and says nothing.
        await phone.mark_read(wedding.thread.id, seqs[0])
        with trio.move_on_after(0.3):
            extra = await laptop.next_event(protocol.NotificationsRead)
            raise AssertionError(f"a read that changed nothing was announced: {extra}")

        await laptop.mark_read(wedding.thread.id, seqs[1])
        event = await phone.next_event(protocol.NotificationsRead)
        assert (event.ids, event.unread_count) == ([by_seq[seqs[1]]], 0)
        inbox = await wedding.rest.call("GET", "/me/notifications", wedding.florist)
        assert inbox.json["unread_count"] == 0
        assert all(n["read_at"] is not None for n in inbox.json["notifications"])
    # The shop's admin was told about nothing here, and nothing of theirs changed.
    assert await unread_of(wedding, wedding.florist_admin) == admin_before


async def test_a_threads_notifications_are_marked_read_at_once(wedding: Wedding):
    other = await new_thread(wedding.hub.storage, wedding.group, wedding.planner, title="Menu")
    for body in ("@Flora Green arch?", "@Flora Green petals?"):
        assert (await wedding.post(wedding.planner, body)).status == 201
    elsewhere = await wedding.rest.call(
        "POST",
        f"/threads/{other.id}",
        wedding.planner,
        json_body={"body": "@Flora Green the menu cards?"},
    )
    assert elsewhere.status == 201
    dj_note = await wedding.post(wedding.planner, "@Dee Jay first dance song?")
    assert dj_note.status == 201

    async with hub_client.connect(wedding.hub.ws_url, wedding.florist.token) as florist:
        marked = await wedding.rest.call(
            "POST",
            "/me/notifications/read",
            wedding.florist,
            json_body={"thread_id": str(wedding.thread.id)},
        )
        assert marked.status == 200, marked.body
        assert marked.json == {"marked": 2, "unread_count": 1}
        event = await florist.next_event(protocol.NotificationsRead)
        assert (len(event.ids), event.unread_count) == (2, 1)

        everything = await wedding.rest.call(
            "POST", "/me/notifications/read", wedding.florist, json_body={"all": True}
        )
        assert everything.json == {"marked": 1, "unread_count": 0}
        event = await florist.next_event(protocol.NotificationsRead)
        assert (event.ids, event.all, event.unread_count) == ([], True, 0)

    rows = await wedding.rows(
        "SELECT thread_id, read_at FROM user_notifications WHERE user_id = $1",
        wedding.florist.user_id,
    )
    assert len(rows) == 3 and all(r["read_at"] is not None for r in rows)
    # Another user's notifications about the same thread are theirs to read.
    [dj_row] = await wedding.rows(
        "SELECT read_at FROM user_notifications WHERE user_id = $1", wedding.dj.user_id
    )
    assert dj_row["read_at"] is None

    both = await wedding.rest.call(
        "POST",
        "/me/notifications/read",
        wedding.florist,
        json_body={"thread_id": str(wedding.thread.id), "all": True},
    )
    assert both.status == 422
    assert "exactly one of ids, thread_id or all" in both.body.decode()
    bad = await wedding.rest.call(
        "POST", "/me/notifications/read", wedding.florist, json_body={"thread_id": "nope"}
    )
    assert bad.status == 422
