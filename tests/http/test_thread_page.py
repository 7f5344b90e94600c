"""`GET /threads/{thread_id}` through the real hub: each message's sender name, with messages
sent the way clients send them (REST posts)."""

from __future__ import annotations

import pytest

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
