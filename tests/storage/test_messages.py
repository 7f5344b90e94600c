"""Messages through the storage actor: seqs, idempotency, encryption, reads."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import trio

from hub.storage.messages import count_messages, message_rows
from hub.storage.records import Message
from hub.storage.sealing import OpenedMessages
from hub.storage.threads import get_thread
from tests.factories import (
    message,
    new_group,
    new_member,
    new_thread,
    plain_message_rows,
    send,
    send_varied_history,
)


async def test_messages_get_gap_free_seqs_in_order(storage, settings):
    alice = await new_member(storage, settings)
    thread = await new_thread(storage, await new_group(storage, alice), alice)

    stored = [await send(storage, thread, alice, f"note {i}") for i in range(5)]

    assert [s.seq for s in stored] == [1, 2, 3, 4, 5]
    assert [m.body for m in await storage.messages(thread.id)] == [f"note {i}" for i in range(5)]
    assert (await storage.read(get_thread(thread.id))).last_seq == 5


async def test_concurrent_senders_get_distinct_gap_free_seqs(storage, settings):
    alice = await new_member(storage, settings)
    thread = await new_thread(storage, await new_group(storage, alice), alice)
    results = []

    async def sender(i: int) -> None:
        results.append(await send(storage, thread, alice, f"m{i}", client_msg_id=f"c{i}"))

    async with trio.open_nursery() as nursery:
        for i in range(300):
            nursery.start_soon(sender, i)

    assert sorted(r.seq for r in results) == list(range(1, 301))
    rows = await storage.messages(thread.id, limit=1000)
    assert [m.seq for m in rows] == list(range(1, 301))
    # Each message's body is the one its sender sent under that client_msg_id.
    assert all(m.body == "m" + m.client_msg_id[1:] for m in rows)


async def test_repeated_client_msg_id_returns_the_original(storage, settings):
    alice = await new_member(storage, settings)
    thread = await new_thread(storage, await new_group(storage, alice), alice)

    first = await send(storage, thread, alice, "Tent at 3pm", client_msg_id="m-1")
    again = await send(storage, thread, alice, "Tent at 3pm", client_msg_id="m-1")

    assert (again.id, again.seq, again.duplicate) == (first.id, first.seq, True)
    assert first.duplicate is False
    assert [m.body for m in await storage.messages(thread.id)] == ["Tent at 3pm"]


async def test_repeats_inside_one_batch_are_stored_once(storage, settings):
    alice = await new_member(storage, settings)
    thread = await new_thread(storage, await new_group(storage, alice), alice)
    results = []

    async def sender() -> None:
        results.append(await storage.append_message(message(thread, alice, "once", "same-id")))

    async with trio.open_nursery() as nursery:
        for _ in range(20):
            nursery.start_soon(sender)

    assert len({(r.id, r.seq) for r in results}) == 1
    assert sum(not r.duplicate for r in results) == 1
    assert await storage.read(count_messages(thread.id)) == 1


async def test_a_page_read_in_one_piece_matches_the_rows_read_one_by_one(storage, settings):
    """SQLite carries a page of history as one JSON value (hub.storage.sqlite.packed); what
    comes out must be exactly what a plain row-by-row read of the same columns gives: blobs with
    any byte, a reply, nested metadata, nulls, timestamps."""
    alice = await new_member(storage, settings)
    thread = await new_thread(storage, await new_group(storage, alice), alice)
    first = await send_varied_history(storage, thread, alice, alice, notes=5)

    plain = await storage.read(plain_message_rows(thread.id))
    latest = await storage.read(message_rows(thread.id, before_seq=8, limit=4))
    forward = await storage.read(message_rows(thread.id, after_seq=0, limit=3))

    assert latest == plain[3:7]
    assert forward == plain[:3]
    assert plain[1]["reply_to"] == first.id
    assert list(plain[1]["metadata"]) == ["$sealed"]  # stored sealed, a nested object
    assert (await storage.sealing.open_rows(plain))[1].metadata["tags"] == ["rain", None, 3]
    assert [m.body for m in await storage.sealing.open_rows(forward)] == [
        "Tent at 3pm",
        'Gate "B" \u2014 \U0001f490',
        "note 0",
    ]


async def test_a_row_sealed_anew_or_edited_is_opened_again_not_served_from_memory(
    storage, settings
):
    """Opened messages are remembered by id, nonce, edited_at and deleted_at: a row whose body
    was sealed again, or that was edited, must come back as it now is."""
    alice = await new_member(storage, settings)
    thread = await new_thread(storage, await new_group(storage, alice), alice)
    await send(storage, thread, alice, "Tent at 3pm")
    [row] = await storage.read(message_rows(thread.id))
    assert [m.body for m in await storage.sealing.open_rows([row])] == ["Tent at 3pm"]

    ring = storage.sealing.keyring.for_organization(alice.org_id)
    resealed = ring.seal_message(thread.id, "Tent at 4pm")
    moved = {**row, "body_ciphertext": resealed.ciphertext, "body_nonce": resealed.nonce}
    edited_at = datetime.now(UTC)
    edited = {**moved, "metadata": {"edited": True}, "edited_at": edited_at}

    [again] = await storage.sealing.open_rows([moved])
    [after_edit] = await storage.sealing.open_rows([edited])

    assert again.body == "Tent at 4pm"
    assert (after_edit.metadata, after_edit.edited_at) == ({"edited": True}, edited_at)


def test_opened_messages_forget_the_least_recently_used_first():
    opened = OpenedMessages(max_entries=2)
    first, second, third = (_message(i) for i in range(3))
    opened.put((1,), first)
    opened.put((2,), second)
    assert opened.get((1,)) is first  # now the most recently used
    opened.put((3,), third)

    assert (opened.get((1,)), opened.get((2,)), opened.get((3,))) == (first, None, third)
    assert len(opened) == 2


def _message(i: int) -> Message:
    return Message(
        id=i,
        thread_id=uuid.uuid4(),
        seq=i,
        sender_user_id=uuid.uuid4(),
        sender_org_id=uuid.uuid4(),
        sender_name=f"sender {i}",
        kind="text",
        body=f"m{i}",
        client_msg_id=f"c{i}",
        metadata={},
        created_at=datetime.now(UTC),
    )
