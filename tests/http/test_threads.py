"""Threads over REST: create, list (filters, urgent first, paging), read with history, update."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import msgspec

from hub.http.schemas import MessageOut
from hub.http.threads import _message_out
from hub.storage.audit import audit_rows
from hub.storage.presence import set_presence
from hub.storage.receipts import mark_read
from hub.storage.records import Message
from hub.storage.threads import get_thread
from tests.factories import new_thread, send


async def make_thread(api, member, group, title, **fields):
    reply = await api.post(
        "/threads", as_=member, json={"group_id": str(group.id), "title": title, **fields}
    )
    assert reply.status == 201, reply.json
    return reply.json


async def test_any_member_may_create_a_thread(api, vendor, group, storage):
    reply = await api.post(
        "/threads",
        as_=vendor,
        json={"group_id": str(group.id), "title": "Load-in", "thread_type": "logistics"},
    )

    assert reply.status == 201
    assert reply.headers["Location"].endswith(f"/threads/{reply.json['id']}")
    stored = await storage.read(get_thread(uuid.UUID(reply.json["id"])))
    assert (stored.title, stored.thread_type, stored.created_by) == (
        "Load-in",
        "logistics",
        vendor.user_id,
    )


async def test_a_thread_created_with_a_first_message_holds_it(api, owner, group, storage):
    created = await make_thread(api, owner, group, "Menu", first_message={"body": "Fish or veg?"})

    messages = await storage.messages(uuid.UUID(created["id"]))
    assert [m.body for m in messages] == ["Fish or veg?"]
    assert created["message_count"] == 1


async def test_threads_cannot_be_created_in_an_archived_group(api, owner, group):
    await api.delete(f"/groups/{group.id}", as_=owner)

    reply = await api.post("/threads", as_=owner, json={"group_id": str(group.id), "title": "x"})

    assert reply.status == 409


async def test_priority_sort_puts_urgent_first(api, owner, group):
    for title, priority in (("low", "low"), ("urgent", "urgent"), ("normal", "normal")):
        await make_thread(api, owner, group, title, priority=priority)
    await make_thread(api, owner, group, "high", priority="high")

    reply = await api.get("/threads", as_=owner, query={"sort": "priority"})

    assert [t["title"] for t in reply.json["items"]] == ["urgent", "high", "normal", "low"]


async def test_priority_sorted_pages_continue_where_the_last_ended(api, owner, group):
    for i, priority in enumerate(["low", "urgent", "normal", "urgent", "high", "low"]):
        await make_thread(api, owner, group, f"{priority}-{i}", priority=priority)
    seen, cursor = [], None

    while True:
        query = {"sort": "priority", "limit": "2"} | ({"cursor": cursor} if cursor else {})
        page = (await api.get("/threads", as_=owner, query=query)).json
        seen += [t["priority"] for t in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert seen == ["urgent", "urgent", "high", "normal", "low", "low"]


async def test_threads_filter_by_title_text_case_insensitively(api, owner, group):
    await make_thread(api, owner, group, "Ceremony Timeline")
    await make_thread(api, owner, group, "Catering")

    reply = await api.get("/threads", as_=owner, query={"q": "timeLINE"})

    assert [t["title"] for t in reply.json["items"]] == ["Ceremony Timeline"]


async def test_a_percent_sign_in_the_title_filter_is_literal(api, owner, group):
    await make_thread(api, owner, group, "100% cotton linens")
    await make_thread(api, owner, group, "1000 chairs")

    reply = await api.get("/threads", as_=owner, query={"q": "100%"})

    assert [t["title"] for t in reply.json["items"]] == ["100% cotton linens"]


async def test_threads_filter_by_group_status_priority_and_type(api, storage, owner, group):
    other_group = await api.post("/groups", as_=owner, json={"name": "Second"})
    await make_thread(api, owner, group, "match", priority="high", thread_type="timeline")
    await make_thread(api, owner, group, "wrong type", priority="high")
    await make_thread(api, owner, group, "wrong priority", thread_type="timeline")
    await api.post(
        "/threads",
        as_=owner,
        json={"group_id": other_group.json["id"], "title": "other group", "priority": "high"},
    )

    reply = await api.get(
        "/threads",
        as_=owner,
        query={
            "group_id": str(group.id),
            "status": "open",
            "priority": "high",
            "thread_type": "timeline",
        },
    )

    assert [t["title"] for t in reply.json["items"]] == ["match"]


async def test_threads_filter_by_updated_since(api, storage, owner, group, thread):
    later = await new_thread(storage, group, owner, title="later")

    reply = await api.get(
        "/threads", as_=owner, query={"updated_since": later.updated_at.isoformat()}
    )

    assert [t["title"] for t in reply.json["items"]] == ["later"]


async def test_the_list_shows_counts_and_unread_from_read_receipts(
    api, storage, owner, vendor, thread
):
    for body in ("a", "b", "c"):
        await send(storage, thread, vendor, body)
    await storage.write(
        lambda now: mark_read(thread_id=thread.id, user_id=owner.user_id, seq=2, now=now)
    )

    [item] = (await api.get("/threads", as_=owner)).json["items"]

    assert (item["message_count"], item["unread_count"], item["last_read_seq"]) == (3, 1, 2)
    assert item["last_message_at"] is not None


async def test_an_outsider_lists_no_threads_and_cannot_filter_by_our_group(
    api, outsider, group, thread
):
    assert (await api.get("/threads", as_=outsider)).json["items"] == []
    filtered = await api.get("/threads", as_=outsider, query={"group_id": str(group.id)})
    assert filtered.status == 404


async def test_detail_returns_the_latest_page_of_decrypted_history(
    api, storage, owner, vendor, thread
):
    for i in range(5):
        await send(storage, thread, vendor, f"m{i}")

    reply = await api.get(f"/threads/{thread.id}", as_=owner, query={"limit": "2"})

    assert reply.status == 200
    assert [m["body"] for m in reply.json["messages"]] == ["m3", "m4"]
    assert reply.json["has_more"] is True


async def test_detail_pages_back_with_before_seq_and_forward_with_after_seq(
    api, storage, owner, thread
):
    for i in range(5):
        await send(storage, thread, owner, f"m{i}")

    back = await api.get(f"/threads/{thread.id}", as_=owner, query={"before_seq": "3"})
    forward = await api.get(
        f"/threads/{thread.id}", as_=owner, query={"after_seq": "3", "limit": "1"}
    )

    assert ([m["seq"] for m in back.json["messages"]], back.json["has_more"]) == ([1, 2], False)
    assert ([m["seq"] for m in forward.json["messages"]], forward.json["has_more"]) == ([4], True)


async def test_detail_shows_who_is_present(api, storage, owner, vendor, thread):
    for member, status in ((vendor, "online"), (owner, "offline")):
        await storage.write(
            lambda now, m=member, s=status: set_presence(
                thread_id=thread.id, user_id=m.user_id, status=s, now=now
            )
        )

    presence = (await api.get(f"/threads/{thread.id}", as_=owner)).json["presence"]

    assert [(p["user_id"], p["status"]) for p in presence] == [(str(vendor.user_id), "online")]


async def test_a_manager_may_update_a_thread(api, manager, thread, storage):
    reply = await api.put(
        f"/threads/{thread.id}", as_=manager, json={"priority": "urgent", "status": "resolved"}
    )

    assert reply.status == 200
    stored = await storage.read(get_thread(thread.id))
    assert (stored.priority, stored.status) == ("urgent", "resolved")


async def test_a_vendor_may_not_update_a_thread(api, vendor, thread):
    reply = await api.put(f"/threads/{thread.id}", as_=vendor, json={"priority": "urgent"})

    assert reply.status == 403


async def test_a_thread_update_is_audited_with_the_changes(api, owner, group, thread, storage):
    await api.put(f"/threads/{thread.id}", as_=owner, json={"title": "New title"})

    [row] = await storage.read(audit_rows(group_ids=[group.id], action="thread.update"))
    assert row.details["changes"] == {"title": {"from": thread.title, "to": "New title"}}
    assert row.target_id == str(thread.id)


async def test_an_archived_thread_leaves_the_list_and_is_read_only(api, owner, thread):
    archived = await api.delete(f"/threads/{thread.id}", as_=owner)

    assert (archived.status, archived.json["status"]) == (200, "archived")
    assert (await api.get("/threads", as_=owner)).json["items"] == []
    listed = await api.get("/threads", as_=owner, query={"status": "archived"})
    assert [t["id"] for t in listed.json["items"]] == [str(thread.id)]
    assert (await api.put(f"/threads/{thread.id}", as_=owner, json={"title": "x"})).status == 409
    assert (await api.post(f"/threads/{thread.id}", as_=owner, json={"body": "x"})).status == 409


async def test_bulk_thread_update_reports_each_item(api, storage, owner, group, thread, outsider):
    other = await new_thread(storage, group, owner, title="second")

    reply = await api.put(
        "/threads",
        as_=owner,
        json={
            "items": [
                {"id": str(thread.id), "status": "resolved"},
                {"id": str(uuid.uuid4()), "priority": "low"},
                {"id": str(other.id), "priority": "urgent"},
            ]
        },
    )

    assert reply.status == 200
    assert [(r["ok"], r["status"]) for r in reply.json["results"]] == [
        (True, 200),
        (False, 404),
        (True, 200),
    ]
    assert (await storage.read(get_thread(other.id))).priority == "urgent"


async def test_bulk_thread_update_refuses_a_vendor_per_item(api, vendor, thread, storage):
    reply = await api.put(
        "/threads", as_=vendor, json={"items": [{"id": str(thread.id), "priority": "urgent"}]}
    )

    assert [(r["ok"], r["status"]) for r in reply.json["results"]] == [(False, 403)]
    assert reply.json["results"][0]["error"]["code"] == "forbidden"
    assert (await storage.read(get_thread(thread.id))).priority == "normal"


async def test_unread_counts_skip_own_messages_on_both_sides_of_the_read_mark(
    api, storage, owner, vendor, group, thread
):
    """Unread is computed from seqs less the reader's own messages; the group list, the thread
    list and the thread page must all agree with a plain count of others' messages after the
    mark, with the reader's own messages before and after it."""
    other = await new_thread(storage, group, owner, title="second")
    for sender, body in [(vendor, "v1"), (owner, "o1"), (vendor, "v2"), (owner, "o2")]:
        await send(storage, thread, sender, body)
    for sender, body in [(owner, "o3"), (vendor, "v3"), (vendor, "v4"), (owner, "o4")]:
        await send(storage, thread, sender, body)
    await send(storage, other, vendor, "elsewhere")
    await storage.write(
        lambda now: mark_read(thread_id=thread.id, user_id=owner.user_id, seq=3, now=now)
    )
    # After seq 3: o2, o3, v3, v4, o4 -> two of them are the vendor's.

    threads = {t["title"]: t for t in (await api.get("/threads", as_=owner)).json["items"]}
    page = (await api.get(f"/threads/{thread.id}", as_=owner)).json
    [group_item] = (await api.get("/groups", as_=owner)).json["items"]

    assert threads[thread.title]["unread_count"] == 2
    assert threads["second"]["unread_count"] == 1
    assert (page["thread"]["unread_count"], page["thread"]["last_read_seq"]) == (2, 3)
    assert group_item["stats"]["unread_count"] == 3
    vendor_threads = {t["title"]: t for t in (await api.get("/threads", as_=vendor)).json["items"]}
    assert vendor_threads[thread.title]["unread_count"] == 4  # o1..o4, nothing marked read


def test_a_message_in_a_page_carries_every_field_of_the_documented_shape():
    """The page builds MessageOut field by field (faster than msgspec.convert): it must give
    exactly what the conversion gives, with every optional field set."""
    now = datetime.now(UTC)
    message = Message(
        id=7,
        thread_id=uuid.uuid4(),
        seq=3,
        sender_user_id=uuid.uuid4(),
        sender_org_id=uuid.uuid4(),
        sender_name="Victor Vendor",
        kind="location",
        body="Gate B",
        client_msg_id="c-7",
        metadata={"latitude": 51.5, "longitude": -0.12},
        created_at=now - timedelta(minutes=5),
        reply_to=6,
        edited_at=now,
        deleted_at=now,  # (a tombstone has no body; set here only so every field is checked)
        change_no=2,
        erased=True,
    )

    out = _message_out(message)

    assert out == msgspec.convert(message, MessageOut, from_attributes=True)
    assert all(getattr(out, f) is not None for f in MessageOut.__struct_fields__)
