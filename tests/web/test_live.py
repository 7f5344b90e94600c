"""Two vendors of different organizations in two browsers: live messages, typing, presence,
read receipts, going offline and coming back, on both backends."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.web.conftest import DESKTOP, Wedding


def messages(page):
    return page.get_by_role("log", name="Messages").get_by_role("article")


def acknowledged(page, text: str):
    """The message with `text` once the hub has stored it: a pending one (still in the page's
    outbox) is an article too, shown before its ack."""
    log = page.get_by_role("log", name="Messages")
    return log.locator("article:not(.pending)", has_text=text)


def open_thread(open_app, wedding: Wedding, vendor, **options):
    page = open_app(wedding.hub, vendor, path=f"#/t/{wedding.thread_id}", **options)
    expect(page.get_by_role("status")).to_have_text("Live")
    expect(page.get_by_role("heading", name="Ceremony flowers")).to_be_visible()
    return page


def send(page, text: str) -> None:
    composer = page.get_by_role("textbox", name="Message")
    composer.fill(text)
    page.get_by_role("button", name="Send").click()


def test_a_message_from_one_vendor_appears_live_for_the_other(open_app, wedding_both: Wedding):
    wedding = wedding_both
    planner = open_thread(open_app, wedding, wedding.planner, viewport=DESKTOP)
    florist = open_thread(open_app, wedding, wedding.florist)
    # Each sees the other here (presence, with names from the join).
    expect(florist.get_by_label("Who is here")).to_contain_text("Pat Planner")
    expect(planner.get_by_label("Who is here")).to_contain_text("Fran Florist")

    send(planner, "Peonies arrive at 10am")

    expect(messages(florist).filter(has_text="Peonies arrive at 10am")).to_have_count(1)
    expect(messages(florist).first).to_contain_text("Pat Planner")
    stored = wedding.history(wedding.planner)
    assert [m["body"] for m in stored] == ["Peonies arrive at 10am"]
    assert planner.errors == [] and florist.errors == []


def test_typing_shows_on_the_other_side_and_stops(open_app, wedding: Wedding):
    planner = open_thread(open_app, wedding, wedding.planner)
    florist = open_thread(open_app, wedding, wedding.florist)
    expect(planner.get_by_label("Who is here")).to_contain_text("Fran Florist")

    florist.get_by_role("textbox", name="Message").press_sequentially("Running la")

    expect(planner.get_by_text("Fran Florist is typing…")).to_be_visible()
    florist.get_by_role("textbox", name="Message").press("Enter")
    # Posting ends typing; the message arrives.
    expect(messages(planner).filter(has_text="Running la")).to_have_count(1)
    expect(planner.get_by_text("Fran Florist is typing…")).to_have_count(0)


def test_read_receipts_show_who_has_seen_a_message(open_app, wedding: Wedding):
    planner = open_thread(open_app, wedding, wedding.planner)
    send(planner, "Can you confirm the arch?")
    mine = messages(planner).filter(has_text="Can you confirm the arch?")
    expect(mine).to_have_count(1)
    expect(mine).not_to_contain_text("Seen by")

    florist = open_thread(open_app, wedding, wedding.florist)
    expect(messages(florist).filter(has_text="Can you confirm the arch?")).to_have_count(1)

    expect(mine).to_contain_text("Seen by Fran Florist")
    # And the hub stored it: the thread page lists the florist's receipt at that seq.
    detail = wedding.hub.call(wedding.planner, "GET", f"/threads/{wedding.thread_id}")
    receipts = {r["display_name"]: r["last_read_seq"] for r in detail["read_receipts"]}
    assert receipts.get("Fran Florist") == 1


def test_offline_vendor_gets_what_was_missed_once_and_in_order(
    open_app, browser, wedding_both: Wedding
):
    wedding = wedding_both
    planner = open_thread(open_app, wedding, wedding.planner)
    florist = open_thread(open_app, wedding, wedding.florist)
    send(planner, "before the outage")
    expect(messages(florist).filter(has_text="before the outage")).to_have_count(1)

    florist.context.set_offline(True)
    expect(florist.get_by_role("status")).to_contain_text("Offline")
    for n in (1, 2, 3):
        send(planner, f"while you were away {n}")
    expect(messages(planner).filter(has_text="while you were away")).to_have_count(3)
    # Nothing reaches the florist while offline.
    expect(messages(florist).filter(has_text="while you were away")).to_have_count(0)

    florist.context.set_offline(False)
    expect(florist.get_by_role("status")).to_have_text("Live")
    missed = messages(florist).filter(has_text="while you were away")
    expect(missed).to_have_count(3)
    order = [re.search(r"away (\d)", text).group(1) for text in missed.all_inner_texts()]
    assert order == ["1", "2", "3"]
    expect(messages(florist).filter(has_text="before the outage")).to_have_count(1)
    expect(messages(florist)).to_have_count(4)


def test_a_message_written_offline_is_pending_then_sent_once(open_app, wedding_both: Wedding):
    wedding = wedding_both
    planner = open_thread(open_app, wedding, wedding.planner)
    florist = open_thread(open_app, wedding, wedding.florist)

    florist.context.set_offline(True)
    expect(florist.get_by_role("status")).to_contain_text("Offline")
    send(florist, "Delivered to the side door")
    pending = messages(florist).filter(has_text="Delivered to the side door")
    expect(pending).to_contain_text("Pending")
    assert wedding.history(wedding.planner) == []

    florist.context.set_offline(False)
    expect(florist.get_by_role("status")).to_have_text("Live")
    expect(messages(planner).filter(has_text="Delivered to the side door")).to_have_count(1)
    expect(pending).to_have_count(1)
    expect(pending).not_to_contain_text("Pending")
    stored = wedding.history(wedding.planner)
    assert [m["body"] for m in stored] == ["Delivered to the side door"]


def test_a_status_set_in_one_browser_shows_in_the_other(open_app, wedding: Wedding):
    planner = open_thread(open_app, wedding, wedding.planner)
    florist = open_thread(open_app, wedding, wedding.florist)
    here = planner.get_by_label("Who is here")
    expect(here).to_have_text("Here: Fran Florist")

    florist.get_by_label("My status").select_option("busy")
    expect(here).to_have_text("Here: Fran Florist (busy)")

    florist.get_by_role("link", name="← Threads").click()  # leaving the thread
    expect(here).to_have_text("Only you are here")


def test_a_vendor_removed_from_the_wedding_loses_the_thread_at_once(open_app, wedding: Wedding):
    planner = open_thread(open_app, wedding, wedding.planner)
    florist = open_thread(open_app, wedding, wedding.florist)
    wedding.hub.call(
        wedding.planner, "DELETE", f"/groups/{wedding.group_id}/members/{wedding.florist.org_id}"
    )
    expect(florist.get_by_text("You no longer have access to this thread.")).to_be_visible()
    expect(florist.get_by_role("textbox", name="Message")).to_be_disabled()
    send(planner, "after the removal")
    # The planner's copy is the same fan-out: once it is there, the florist's would be too.
    expect(messages(planner).filter(has_text="after the removal")).to_have_count(1)
    expect(messages(florist).filter(has_text="after the removal")).to_have_count(0)


def test_while_the_tab_is_hidden_messages_count_in_its_title_and_stay_unread(
    open_app, wedding: Wedding
):
    planner = open_thread(open_app, wedding, wedding.planner)
    florist = open_thread(open_app, wedding, wedding.florist)
    set_visibility = """state => {
        Object.defineProperty(document, 'visibilityState', {value: state, configurable: true});
        document.dispatchEvent(new Event('visibilitychange'));
    }"""
    florist.evaluate(set_visibility, "hidden")
    send(planner, "are you there?")
    send(planner, "the van is here")
    expect(messages(florist)).to_have_count(2)
    expect(florist).to_have_title("(2) Ceremony flowers · Vendor Hub")
    expect(florist.locator("article.unread")).to_have_count(2)
    florist.wait_for_timeout(1000)  # past the page's 300 ms pause before it marks anything read
    detail = wedding.hub.call(wedding.florist, "GET", f"/threads/{wedding.thread_id}")
    assert detail["thread"]["unread_count"] == 2

    florist.evaluate(set_visibility, "visible")
    expect(florist).to_have_title("Ceremony flowers · Vendor Hub")
    expect(florist.locator("article.unread")).to_have_count(0)
    mine = messages(planner).filter(has_text="the van is here")
    expect(mine).to_contain_text("Seen by Fran Florist")
