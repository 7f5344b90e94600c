"""Rows nested in another query's row (`hub.storage.sql.Nested`): one statement on either
engine, and the same rows as the plain queries they replace."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from hub.errors import NotFound
from hub.storage.access_rows import thread_access_row, thread_page_rows
from hub.storage.identities import upsert_identity
from hub.storage.presence import set_presences
from hub.storage.receipts import THREAD_RECEIPTS_MAX, mark_read
from hub.storage.records import ReaderPosition
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


def allow(row):
    """A decision that lets every caller read (the access rules are tested in tests/http)."""


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

    async def page(after_seq=None, before_seq=None):
        return await storage.read(
            thread_page_rows(
                thread.id,
                alice.org_id,
                alice.user_id,
                allow,
                after_seq=after_seq,
                before_seq=before_seq,
                limit=3,
            )
        )

    latest = await page()
    assert latest.message_rows == plain[5:8]
    assert latest.access.thread.last_seq == 8 and latest.access.member_status == "active"
    assert latest.reader == ReaderPosition(last_read_seq=0, unread_count=1)  # bob's one message
    assert latest.presence == presence
    assert {p.status for p in latest.presence} == {"online", "away"}
    assert all(p.last_seen_at == now for p in latest.presence)
    assert all(p.last_seen_at.utcoffset().total_seconds() == 0 for p in latest.presence)

    assert (await page(before_seq=4)).message_rows == plain[0:3]
    assert (await page(after_seq=1)).message_rows == plain[1:4]
    assert (await page(after_seq=8)).message_rows == []
    reply = (await page(after_seq=0)).message_rows[1]
    assert reply == plain[1]
    assert reply["reply_to"] == first.id and list(reply["metadata"]) == ["$sealed"]
    [opened] = await storage.sealing.open_rows([reply])
    assert opened.metadata["tags"] == ["rain", None, 3]
    assert isinstance(reply["body_ciphertext"], bytes) and reply["created_at"].tzinfo is not None


async def test_a_thread_without_messages_or_presence_nests_empty_lists(storage, settings):
    alice = await new_member(storage, settings)
    thread = await new_thread(storage, await new_group(storage, alice), alice)

    rows = await storage.read(
        thread_page_rows(
            thread.id, alice.org_id, alice.user_id, allow, after_seq=None, before_seq=None, limit=50
        )
    )

    assert (rows.message_rows, rows.presence, rows.receipts) == ([], [], [])


async def test_the_decision_sees_a_missing_thread_as_none_and_its_refusal_ends_the_read(
    storage, settings
):
    alice = await new_member(storage, settings)
    thread = await new_thread(storage, await new_group(storage, alice), alice)
    await send(storage, thread, alice, "Tent at 3pm")
    seen = []

    def refuse(row):
        seen.append(row)
        raise NotFound("no")

    for thread_id in (uuid.uuid4(), thread.id):
        with pytest.raises(NotFound):
            await storage.read(
                thread_page_rows(
                    thread_id,
                    alice.org_id,
                    alice.user_id,
                    refuse,
                    after_seq=None,
                    before_seq=None,
                    limit=50,
                )
            )

    missing, present = seen
    assert missing is None
    assert present == await storage.read(thread_access_row(thread.id, alice.org_id))
    assert present.thread.id == thread.id and present.member_status == "active"


async def test_a_thread_row_carries_the_furthest_read_receipts_with_their_readers_names(
    storage, settings
):
    alice = await new_member(storage, settings)
    thread = await new_thread(storage, await new_group(storage, alice), alice)
    for body in ("a", "b", "c"):
        await send(storage, thread, alice, body)
    # More readers than a page shows, many at the same seq, so ties are ordered too.
    readers = [(uuid.uuid4(), f"Reader {i}", i % 4) for i in range(THREAD_RECEIPTS_MAX + 1)]

    def mark_all(now):
        for user_id, name, seq in readers:
            yield from upsert_identity(
                user_id=user_id,
                organization_id=alice.org_id,
                username=name,
                display_name=name,
                role="vendor",
                now=now,
            )
            yield from mark_read(thread_id=thread.id, user_id=user_id, seq=seq, now=now)

    await storage.write(mark_all)
    rows = await storage.read(
        thread_page_rows(
            thread.id, alice.org_id, alice.user_id, allow, after_seq=None, before_seq=None, limit=1
        )
    )

    furthest = sorted(readers, key=lambda r: (-r[2], str(r[0])))[:THREAD_RECEIPTS_MAX]
    assert [(r.user_id, r.display_name, r.last_read_seq) for r in rows.receipts] == furthest
    assert {r.organization_id for r in rows.receipts} == {alice.org_id}
    assert all(r.read_at.utcoffset().total_seconds() == 0 for r in rows.receipts)
