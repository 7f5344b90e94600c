"""Editing and deleting messages in the web client: a sender edits their message in place and
everyone sees the new text live and after a reload; a deleted message becomes a tombstone in
its place; the wedding's owner deletes anyone's, nobody else does; a page that was offline
catches up on the changes it missed; hostile text stays text."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.web.conftest import DESKTOP, Wedding
from tests.web.test_live import acknowledged, messages, open_thread, send

HOSTILE = '<img src=x onerror="window.pwned=1">'


def actions_of(article):
    return article.locator(".msg-actions")


def test_a_sender_edits_a_message_and_everyone_sees_the_new_text(open_app, wedding_both: Wedding):
    wedding = wedding_both
    florist = open_thread(open_app, wedding, wedding.florist, viewport=DESKTOP)
    planner = open_thread(open_app, wedding, wedding.planner)
    send(florist, "Peonies arrive at 10")
    mine = acknowledged(florist, "Peonies arrive at 10")
    expect(acknowledged(planner, "Peonies arrive at 10")).to_be_visible()
    # Only the sender may edit: the planner has no Edit on the florist's message.
    expect(
        acknowledged(planner, "Peonies arrive at 10").get_by_role("button", name="Edit")
    ).to_have_count(0)

    mine.get_by_role("button", name="Edit").click()
    box = florist.get_by_role("textbox", name="Edit message")
    expect(box).to_have_value("Peonies arrive at 10")
    box.fill(f"Peonies arrive at 11 {HOSTILE}")
    florist.get_by_role("button", name="Save").click()

    edited = acknowledged(florist, "Peonies arrive at 11")
    expect(edited).to_contain_text("edited")
    expect(florist.get_by_role("textbox", name="Edit message")).to_have_count(0)
    seen = acknowledged(planner, "Peonies arrive at 11")
    expect(seen).to_contain_text("edited")
    expect(seen.locator(".body")).to_have_text(f"Peonies arrive at 11 {HOSTILE}")
    expect(messages(planner).filter(has_text="arrive at 10")).to_have_count(0)

    planner.reload()
    expect(acknowledged(planner, "Peonies arrive at 11")).to_contain_text("edited")
    [stored] = [m for m in wedding.history(wedding.planner) if "Peonies" in m["body"]]
    assert stored["edited_at"] is not None and stored["change_no"] == 1
    assert planner.evaluate("window.pwned") is None and florist.evaluate("window.pwned") is None
    assert florist.errors == [] and planner.errors == []


def test_an_empty_edit_shows_the_hubs_reason_and_changes_nothing(open_app, wedding: Wedding):
    florist = open_thread(open_app, wedding, wedding.florist)
    send(florist, "The arch is ready")
    acknowledged(florist, "The arch is ready").get_by_role("button", name="Edit").click()
    florist.get_by_role("textbox", name="Edit message").fill("   ")
    florist.get_by_role("button", name="Save").click()
    expect(florist.get_by_role("alert").filter(has_text="Not saved")).to_contain_text("body")
    florist.get_by_role("button", name="Cancel").click()
    expect(acknowledged(florist, "The arch is ready")).not_to_contain_text("edited")
    assert [m["body"] for m in wedding.history(wedding.florist)] == ["The arch is ready"]


def test_a_deleted_message_becomes_a_tombstone_for_everyone(open_app, wedding_both: Wedding):
    wedding = wedding_both
    florist = open_thread(open_app, wedding, wedding.florist)
    planner = open_thread(open_app, wedding, wedding.planner, viewport=DESKTOP)
    send(florist, "My cell is 07700 900123")
    send(florist, "Sound check at 2")
    expect(acknowledged(planner, "Sound check at 2")).to_be_visible()

    article = acknowledged(florist, "My cell is 07700 900123")
    article.get_by_role("button", name="Delete").click()
    expect(article).to_contain_text("Delete this message for everyone?")
    article.get_by_role("button", name="Keep it").click()
    expect(acknowledged(florist, "My cell is")).to_be_visible()
    acknowledged(florist, "My cell is").get_by_role("button", name="Delete").click()
    florist.get_by_role("button", name="Delete it").click()

    for page in (florist, planner):
        expect(messages(page).filter(has_text="07700")).to_have_count(0)
        expect(page.locator(".msg.deleted")).to_have_count(1)
        expect(page.locator(".msg.deleted")).to_contain_text("This message was deleted")
        expect(acknowledged(page, "Sound check at 2")).to_be_visible()
    planner.reload()
    expect(planner.locator(".msg.deleted")).to_contain_text("This message was deleted")
    expect(messages(planner).filter(has_text="07700")).to_have_count(0)
    tomb = [m for m in wedding.history(wedding.planner) if m["deleted_at"]]
    assert len(tomb) == 1 and tomb[0]["body"] == "" and tomb[0]["metadata"] == {}
    assert florist.errors == [] and planner.errors == []


def test_the_weddings_owner_deletes_any_message_and_a_vendor_only_their_own(
    open_app, wedding: Wedding
):
    wedding.post(wedding.planner, "Welcome to the Smith & Jones wedding")
    wedding.post(wedding.florist, "Wrong thread, sorry")
    florist = open_thread(open_app, wedding, wedding.florist)
    planner = open_thread(open_app, wedding, wedding.planner, viewport=DESKTOP)
    # The florist owns her shop, not the wedding: nothing of the planner's is hers to delete.
    welcome = acknowledged(florist, "Welcome to the")
    expect(actions_of(welcome).get_by_role("button", name="Delete")).to_have_count(0)
    expect(
        actions_of(acknowledged(florist, "Wrong thread")).get_by_role("button", name="Delete")
    ).to_be_visible()

    wrong = acknowledged(planner, "Wrong thread, sorry")
    wrong.get_by_role("button", name="Delete").click()
    planner.get_by_role("button", name="Delete it").click()
    expect(florist.locator(".msg.deleted")).to_contain_text("This message was deleted")
    expect(messages(florist).filter(has_text="Wrong thread")).to_have_count(0)
    assert [m["deleted_at"] is not None for m in wedding.history(wedding.planner)] == [False, True]


def test_a_page_that_was_offline_catches_up_on_edits_and_deletions(open_app, wedding_both: Wedding):
    wedding = wedding_both
    first = wedding.post(wedding.planner, "Ceremony at 2")
    second = wedding.post(wedding.planner, "Parking behind the barn")
    florist = open_thread(open_app, wedding, wedding.florist)
    expect(acknowledged(florist, "Parking behind the barn")).to_be_visible()

    florist.context.set_offline(True)
    expect(florist.get_by_role("status")).to_contain_text("Offline")
    hub, thread = wedding.hub, wedding.thread_id
    hub.call(
        wedding.planner,
        "PUT",
        f"/threads/{thread}/messages/{first['seq']}",
        {"body": "Ceremony at 3"},
    )
    hub.call(wedding.planner, "DELETE", f"/threads/{thread}/messages/{second['seq']}")
    florist.context.set_offline(False)
    expect(florist.get_by_role("status")).to_have_text("Live")

    expect(acknowledged(florist, "Ceremony at 3")).to_contain_text("edited")
    expect(messages(florist).filter(has_text="Parking")).to_have_count(0)
    expect(florist.locator(".msg.deleted")).to_have_count(1)
    assert florist.errors == []
