"""A message's edit and deletion over both doors and both backends: who may, what subscribers
see live and in order, what history and a replay show afterwards, what is left in the database
and the blob store, and the audit rows (never the text)."""

from __future__ import annotations

import json
from pathlib import Path
from uuid import UUID

import pytest
import trio

from hub import client as hub_client
from hub import protocol
from hub.config import sqlite_path
from tests.attachments.conftest import png
from tests.notifications.conftest import Wedding


def raw_bytes(database: Path) -> bytes:
    """The database file and its WAL and shared-memory files, as they are on disk."""
    files = [p for p in database.parent.glob(database.name + "*") if p.is_file()]
    return b"".join(p.read_bytes() for p in files)


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


async def page_of(wedding: Wedding, member=None) -> list[dict]:
    reply = await wedding.rest.call("GET", f"/threads/{wedding.thread.id}", member or wedding.dj)
    assert reply.status == 200, reply.body
    return reply.json["messages"]


def by_seq(messages: list[dict]) -> dict[int, dict]:
    return {m["seq"]: m for m in messages}


async def edit(wedding: Wedding, member, seq: int, body: str):
    return await wedding.rest.call(
        "PUT", f"/threads/{wedding.thread.id}/messages/{seq}", member, json_body={"body": body}
    )


async def delete(wedding: Wedding, member, seq: int):
    return await wedding.rest.call("DELETE", f"/threads/{wedding.thread.id}/messages/{seq}", member)


async def audit_rows(wedding: Wedding, action: str) -> list[dict]:
    return await wedding.rows(
        "SELECT actor_user_id, group_id, target_id, details FROM vendor_communication_audit "
        "WHERE action = $1 ORDER BY id",
        action,
    )


async def test_a_sender_edits_over_rest_and_subscribers_see_it_live(wedding: Wedding):
    seq = (await wedding.post(wedding.florist, "Peonies arrive at 10")).json["seq"]
    async with hub_client.connect(wedding.hub.ws_url, wedding.planner.token) as planner:
        await planner.join(wedding.thread.id)
        reply = await edit(wedding, wedding.florist, seq, "Peonies arrive at 11, @Dee Jay")
        assert reply.status == 200, reply.body
        assert reply.json["change_no"] == 1 and reply.json["deleted"] is False
        event = await planner.next_event(protocol.MessageEdited)
    assert (event.thread_id, event.seq, event.change_no) == (wedding.thread.id, seq, 1)
    assert event.body == "Peonies arrive at 11, @Dee Jay"
    # The mentions follow the new text; nobody is notified anew by an edit.
    assert [m["name"] for m in event.metadata["mentions"]["users"]] == ["Dee Jay"]
    assert await wedding.notifications_of(wedding.dj) == []

    message = by_seq(await page_of(wedding))[seq]
    assert message["body"] == "Peonies arrive at 11, @Dee Jay"
    assert message["edited_at"] is not None and message["change_no"] == 1
    assert message["deleted_at"] is None
    [row] = await audit_rows(wedding, "message.edit")
    assert (row["actor_user_id"], row["group_id"]) == (wedding.florist.user_id, wedding.group.id)
    assert "Peonies" not in json.dumps(row["details"], default=str)

    # A second edit takes the next change number.
    again = await edit(wedding, wedding.florist, seq, "Peonies at noon")
    assert again.json["change_no"] == 2
    threads = await wedding.rows(
        "SELECT last_change FROM messaging_threads WHERE id = $1", wedding.thread.id
    )
    assert threads == [{"last_change": 2}]


async def test_edits_are_refused_with_the_reason(wedding: Wedding):
    seq = (await wedding.post(wedding.florist, "The arch is ready")).json["seq"]
    other = await edit(wedding, wedding.dj, seq, "hijacked")
    assert other.status == 403 and "only its sender edits" in other.body.decode()
    # Not even the group's owner changes what someone else said.
    owner = await edit(wedding, wedding.planner, seq, "hijacked")
    assert owner.status == 403
    outsider = await edit(wedding, wedding.outsider, seq, "hijacked")
    assert outsider.status == 404
    empty = await edit(wedding, wedding.florist, seq, "   ")
    assert empty.status == 422 and "body" in empty.body.decode()
    missing = await edit(wedding, wedding.florist, seq + 5, "nothing there")
    assert missing.status == 404
    location = await wedding.post(
        wedding.florist, "The barn", kind="location", latitude=51.5, longitude=-0.1
    )
    moved = await edit(wedding, wedding.florist, location.json["seq"], "Another barn")
    assert moved.status == 400 and "location message cannot be edited" in moved.body.decode()
    assert (await delete(wedding, wedding.florist, seq)).status == 200
    gone = await edit(wedding, wedding.florist, seq, "too late")
    assert gone.status == 409 and "was deleted" in gone.body.decode()
    assert by_seq(await page_of(wedding))[location.json["seq"]]["body"] == "The barn"


async def test_a_deletion_over_the_socket_leaves_a_tombstone_everywhere(wedding: Wedding):
    first = (await wedding.post(wedding.dj, "My cell is 07700 900123")).json["seq"]
    second = (await wedding.post(wedding.dj, "Sound check at 2")).json["seq"]
    async with (
        hub_client.connect(wedding.hub.ws_url, wedding.planner.token) as planner,
        hub_client.connect(wedding.hub.ws_url, wedding.dj.token) as dj,
    ):
        await planner.join(wedding.thread.id)
        ack = await dj.delete(wedding.thread.id, first)
        assert (ack.seq, ack.change_no, ack.duplicate) == (first, 1, None)
        event = await planner.next_event(protocol.MessageDeleted)
        assert (event.seq, event.by, event.change_no) == (first, wedding.dj.user_id, 1)
        again = await dj.delete(wedding.thread.id, first)
        assert (again.change_no, again.duplicate) == (1, True)
        with trio.move_on_after(0.3):
            extra = await planner.next_event(protocol.MessageDeleted)
            raise AssertionError(f"a repeated deletion was announced again: {extra}")

    messages = by_seq(await page_of(wedding))
    tomb = messages[first]
    assert (tomb["body"], tomb["metadata"], tomb["change_no"]) == ("", {}, 1)
    assert tomb["deleted_at"] is not None
    assert messages[second]["body"] == "Sound check at 2"  # the seq stays, the rest is untouched
    [row] = await wedding.rows(
        "SELECT body_ciphertext, body_nonce, metadata, deleted_by FROM thread_messages "
        "WHERE thread_id = $1 AND seq = $2",
        wedding.thread.id,
        first,
    )
    assert (bytes(row["body_ciphertext"]), bytes(row["body_nonce"])) == (b"", b"")
    assert row["metadata"] in ({}, "{}") and row["deleted_by"] == wedding.dj.user_id
    audited = await audit_rows(wedding, "message.delete")
    assert [(r["actor_user_id"], r["details"]["via"]) for r in audited] == [
        (wedding.dj.user_id, "websocket")
    ]
    assert "07700" not in json.dumps([r["details"] for r in audited], default=str)


async def test_the_groups_owner_deletes_any_message_and_nobody_else_does(wedding: Wedding):
    seq = (await wedding.post(wedding.dj, "Call me on my private number")).json["seq"]
    # The thread's page says who may delete anyone's message there, for a client to offer it.
    for member, may in (
        (wedding.planner, True),
        (wedding.florist_admin, False),
        (wedding.dj, False),
    ):
        page = await wedding.rest.call("GET", f"/threads/{wedding.thread.id}", member)
        assert page.json["may_delete_any"] is may, member
    for member in (wedding.florist, wedding.florist_admin, wedding.outsider):
        refused = await delete(wedding, member, seq)
        assert refused.status in (403, 404), (member, refused.status)
    assert (await delete(wedding, wedding.florist_admin, seq)).status == 403
    by_owner = await delete(wedding, wedding.planner, seq)
    assert by_owner.status == 200, by_owner.body
    assert by_owner.json["by"] == str(wedding.planner.user_id)
    [row] = await audit_rows(wedding, "message.delete")
    assert row["actor_user_id"] == wedding.planner.user_id
    assert row["details"]["sender_user_id"] == str(wedding.dj.user_id)


async def test_deleting_a_change_ends_its_requests_and_pending_deliveries(wedding: Wedding):
    seq = (await wedding.post(wedding.planner, "Ceremony moves to 3 pm", kind="change")).json["seq"]
    assert (await delete(wedding, wedding.planner, seq)).status == 200
    states = await wedding.rows("SELECT state, next_at FROM ack_requests")
    assert states and all((r["state"], r["next_at"]) == ("expired", None) for r in states)
    confirm = await wedding.rest.call(
        "POST", f"/threads/{wedding.thread.id}/messages/{seq}/ack", wedding.dj
    )
    assert confirm.status == 404
    # Whatever was still to be delivered about it is not: the dispatcher finds it deleted.
    rows = await wedding.settled("in_app")
    assert {r["status"] for r in rows} <= {"delivered", "dead"}
    dead = [r for r in rows if r["status"] == "dead"]
    assert all(r["last_error"] == "the message was deleted" for r in dead)


async def test_a_deleted_attachment_leaves_no_blob_behind(wedding: Wedding):
    upload = await wedding.rest.upload(
        wedding.florist, wedding.thread.id, png(), filename="arch.png", content_type="image/png"
    )
    assert upload.status == 201, upload.body
    attachment_id = upload.json["id"]
    before = files_under(Path(wedding.settings.blob_url))
    assert before, "the upload wrote its blobs"
    sent = await wedding.post(
        wedding.florist, "The arch", kind="attachment", attachment_ids=[attachment_id]
    )
    assert sent.status == 201, sent.body
    assert (await delete(wedding, wedding.florist, sent.json["seq"])).status == 200
    after = files_under(Path(wedding.settings.blob_url))
    assert not (before & after), "the attachment's blobs are gone"
    assert (
        await wedding.rows("SELECT id FROM message_attachments WHERE id = $1", UUID(attachment_id))
        == []
    )
    download = await wedding.rest.call("GET", f"/attachments/{attachment_id}", wedding.planner)
    assert download.status == 404


async def test_a_client_that_was_away_gets_the_changes_it_missed_in_order(wedding: Wedding):
    seqs = [(await wedding.post(wedding.florist, f"line {i}")).json["seq"] for i in range(3)]
    async with hub_client.connect(wedding.hub.ws_url, wedding.dj.token) as dj:
        ack = await dj.join(wedding.thread.id)
        assert ack.last_change == 0
    # While the DJ is away: an edit, a deletion, a new message, and a second edit of the same.
    await edit(wedding, wedding.florist, seqs[0], "line 0, edited")
    await delete(wedding, wedding.florist, seqs[1])
    later = (await wedding.post(wedding.florist, "line 3")).json["seq"]
    await edit(wedding, wedding.florist, seqs[0], "line 0, edited twice")

    async with hub_client.connect(wedding.hub.ws_url, wedding.dj.token) as dj:
        dj.last_change[wedding.thread.id] = 0
        ack = await dj.join(wedding.thread.id, since_seq=seqs[-1])
        assert ack.last_change == 3
        seen = []
        while len(seen) < 3:
            event = await dj.next_event(
                protocol.MessageEdited, protocol.MessageDeleted, protocol.NewMessage
            )
            seen.append(event)
        # Each changed message once, as it is now, in change order; then what is new.
        assert isinstance(seen[0], protocol.MessageDeleted) and seen[0].seq == seqs[1]
        assert isinstance(seen[1], protocol.MessageEdited)
        assert (seen[1].seq, seen[1].body, seen[1].change_no) == (
            seqs[0],
            "line 0, edited twice",
            3,
        )
        assert isinstance(seen[2], protocol.NewMessage) and seen[2].message.seq == later
        assert dj.last_change[wedding.thread.id] == 3

        # Live from here: an edit arrives as it happens, after the replay.
        await edit(wedding, wedding.florist, later, "line 3, edited")
        live = await dj.next_event(protocol.MessageEdited)
        assert (live.seq, live.change_no) == (later, 4)
    assert wedding.hub.supervisor is not None
    assert wedding.hub.supervisor.stats.actor_crashes == 0


# PostgreSQL keeps dead row versions until VACUUM reuses their space (docs/privacy.md): there
# the overwritten row is checked (test_a_deletion_over_the_socket_leaves_a_tombstone_everywhere).
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_the_deleted_text_is_not_in_the_sqlite_files(wedding: Wedding):
    # Long enough to need overflow pages, which a deletion frees to the free list.
    secret = "Gate code 4417, the couple's house is empty from 3 pm. " + "Directions: " * 600
    seq = (await wedding.post(wedding.florist, secret)).json["seq"]
    [row] = await wedding.rows(
        "SELECT body_ciphertext FROM thread_messages WHERE thread_id = $1 AND seq = $2",
        wedding.thread.id,
        seq,
    )
    ciphertext = bytes(row["body_ciphertext"])
    path = Path(sqlite_path(wedding.settings.database_url))
    # Pieces of it: a long ciphertext is split across pages.
    pieces = [ciphertext[i : i + 32] for i in range(0, len(ciphertext) - 32, 512)]
    await wedding.hub.storage.engine.scrub()  # an older message: in the database file itself
    before = raw_bytes(path)
    assert sum(piece in before for piece in pieces) > len(pieces) // 2, "the check sees it"
    assert (await delete(wedding, wedding.florist, seq)).status == 200
    raw = raw_bytes(path)
    assert secret.encode()[:40] not in raw
    left = [piece for piece in pieces if piece in raw]
    assert left == [], "the overwritten ciphertext is zeroed in the file and gone from the WAL"
