"""Rows nested in another query's row (`hub.storage.sql.Nested`): one statement on either
engine, and the same rows as the plain queries they replace."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from hub.storage.access_rows import thread_access_row
from hub.storage.messages import history
from hub.storage.presence import presence_rows, set_presences
from hub.storage.records import PresenceRecord, row_to
from hub.storage.sql import renumbered
from tests.factories import (
    new_group,
    new_member,
    new_thread,
    plain_message_rows,
    send,
    send_varied_history,
)
from tests.queries import thread_presence


def test_nested_placeholders_are_numbered_after_the_outer_querys():
    assert renumbered("a = $1 AND b < $2 LIMIT $10", 4) == "a = $4 AND b < $5 LIMIT $13"
    assert renumbered("no placeholders", 7) == "no placeholders"


async def test_a_thread_row_carries_its_page_and_presence_as_the_plain_reads_give_them(
    storage, settings
):
    alice = await new_member(storage, settings)
    bob = await new_member(storage, settings, org_id=alice.org_id, role="vendor")
    thread = await new_thread(storage, await new_group(storage, alice), alice)
    first = await send_varied_history(storage, thread, alice, bob, notes=6)
    now = datetime(2026, 6, 20, 15, 30, 12, 345678, tzinfo=UTC)
    await storage.write(
        lambda _: set_presences(
            thread_id=thread.id, statuses={alice.user_id: "online", bob.user_id: "away"}, now=now
        )
    )
    plain = await storage.read(plain_message_rows(thread.id))
    presence = await storage.read(thread_presence(thread.id))

    async def page(**bounds):
        row = await storage.read(
            thread_access_row(
                thread.id,
                alice.org_id,
                alice.user_id,
                nested=(
                    history(thread.id, limit=3, **bounds),
                    presence_rows(thread.id),
                ),
            )
        )
        return row

    latest = await page()
    assert latest["messages"] == plain[5:8]
    assert latest["last_seq"] == 8 and latest["member_status"] == "active"
    assert (latest["last_read_seq"], latest["unread_count"]) == (0, 1)  # bob's one message
    assert [row_to(p, PresenceRecord) for p in latest["presence"]] == presence
    assert {p["status"] for p in latest["presence"]} == {"online", "away"}
    assert all(p["last_seen_at"] == now for p in latest["presence"])
    assert all(p["last_seen_at"].utcoffset().total_seconds() == 0 for p in latest["presence"])

    assert (await page(before_seq=4))["messages"] == plain[0:3]
    assert (await page(after_seq=1))["messages"] == plain[1:4]
    assert (await page(after_seq=8))["messages"] == []
    reply = (await page(after_seq=0))["messages"][1]
    assert reply == plain[1]
    assert reply["reply_to"] == first.id and list(reply["metadata"]) == ["$sealed"]
    [opened] = await storage.open_rows([reply])
    assert opened.metadata["tags"] == ["rain", None, 3]
    assert isinstance(reply["body_ciphertext"], bytes) and reply["created_at"].tzinfo is not None


async def test_a_thread_without_messages_or_presence_nests_empty_lists(storage, settings):
    alice = await new_member(storage, settings)
    thread = await new_thread(storage, await new_group(storage, alice), alice)
    nested = (history(thread.id, limit=50), presence_rows(thread.id))

    row = await storage.read(thread_access_row(thread.id, alice.org_id, nested=nested))

    assert (row["messages"], row["presence"]) == ([], [])


async def test_no_outer_row_means_no_nested_rows(storage, settings):
    alice = await new_member(storage, settings)
    thread = await new_thread(storage, await new_group(storage, alice), alice)
    await send(storage, thread, alice, "Tent at 3pm")
    missing = uuid.uuid4()

    row = await storage.read(thread_access_row(missing, alice.org_id, nested=(history(thread.id),)))

    assert row is None
