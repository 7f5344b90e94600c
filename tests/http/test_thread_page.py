"""`GET /threads/{thread_id}` through the real hub: everyone's read receipts and each message's
sender name, marked and sent the ways clients do (WebSocket `mark_read`, REST posts)."""

from __future__ import annotations

from datetime import datetime

import pytest

from hub import client as hub_client
from hub.auth import issue_token
from tests.factories import Member, add_member, new_group, new_member, new_thread
from tests.http.blocking import call


@pytest.fixture
async def world(hub, settings):
    """A planner's group with a photographer of another organization, a thread between them
    and the owner of an organization outside it."""
    planner = await new_member(hub.storage, settings, name="Olivia Owner")
    photographer = await new_member(hub.storage, settings, role="vendor", name="Petra Photo")
    outsider = await new_member(hub.storage, settings, name="Eve Outsider")
    group = await new_group(hub.storage, planner)
    await add_member(hub.storage, group, photographer, invited_by=planner)
    thread = await new_thread(hub.storage, group, planner)
    return planner, photographer, outsider, thread


async def post(hub, member: Member, thread, body: str) -> None:
    status, ack, _ = await call(hub, "POST", f"/threads/{thread.id}", member, {"body": body})
    assert status == 201, ack


async def mark_read(hub, member: Member, thread, seq: int) -> None:
    async with hub_client.connect(hub.ws_url, member.token) as client:
        ack = await client.mark_read(thread.id, seq)
    assert ack.seq == seq


async def test_the_page_shows_every_readers_receipt_furthest_first_with_names(hub, world):
    planner, photographer, _, thread = world
    for body in ("Tent at 3pm", "Rain plan?", "Gate B"):
        await post(hub, planner, thread, body)
    await mark_read(hub, photographer, thread, 2)
    await mark_read(hub, planner, thread, 3)

    status, page, _ = await call(hub, "GET", f"/threads/{thread.id}", photographer)

    assert status == 200
    receipts = page["read_receipts"]
    assert [
        (r["user_id"], r["display_name"], r["organization_id"], r["last_read_seq"])
        for r in receipts
    ] == [
        (str(planner.user_id), "Olivia Owner", str(planner.org_id), 3),
        (str(photographer.user_id), "Petra Photo", str(photographer.org_id), 2),
    ]
    assert all(datetime.fromisoformat(r["read_at"]).tzinfo is not None for r in receipts)


async def test_a_thread_nobody_has_marked_read_has_no_receipts(hub, world):
    planner, _, _, thread = world

    _, page, _ = await call(hub, "GET", f"/threads/{thread.id}", planner)

    assert page["read_receipts"] == []


async def test_an_outsider_gets_404_and_no_receipts(hub, world):
    planner, photographer, outsider, thread = world
    await post(hub, planner, thread, "Tent at 3pm")
    await mark_read(hub, photographer, thread, 1)

    status, body, _ = await call(hub, "GET", f"/threads/{thread.id}", outsider)

    assert status == 404
    assert set(body) == {"error"} and body["error"]["code"] == "not_found"


async def test_history_names_each_sender(hub, world):
    planner, photographer, _, thread = world
    await post(hub, planner, thread, "Tent at 3pm")
    await post(hub, photographer, thread, "On my way")

    _, page, _ = await call(hub, "GET", f"/threads/{thread.id}", planner)

    assert [(m["body"], m["sender_name"]) for m in page["messages"]] == [
        ("Tent at 3pm", "Olivia Owner"),
        ("On my way", "Petra Photo"),
    ]


async def test_history_names_a_sender_as_they_are_called_now(hub, settings, world):
    """The name comes from the sender's profile, which their next token's name updates: a page
    read (and its messages opened) before the change must not serve the old name after it."""
    planner, photographer, _, thread = world
    await post(hub, photographer, thread, "On my way")
    _, before, _ = await call(hub, "GET", f"/threads/{thread.id}", planner)
    renamed = issue_token(
        settings,
        user_id=photographer.user_id,
        org_id=photographer.org_id,
        role="vendor",
        name="Petra Lens",
    )
    await call(hub, "GET", f"/threads/{thread.id}", renamed)

    _, after, _ = await call(hub, "GET", f"/threads/{thread.id}", planner)

    assert [m["sender_name"] for m in before["messages"]] == ["Petra Photo"]
    assert [m["sender_name"] for m in after["messages"]] == ["Petra Lens"]
