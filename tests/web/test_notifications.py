"""Notifications in the web client: the header's Notifications button and its unread count, the
inbox it opens (live, newest first, opening one opens its thread and marks it read, Mark all
read), the toast of an urgent one, the notification settings (kept across a reload, the hub's
refusal shown), a thread's Mute toggle, and hostile names and bodies shown as text."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

from tests.web.conftest import DESKTOP, PHONE, Wedding
from tests.web.hubproc import RestError, Vendor
from tests.web.test_live import acknowledged, open_thread, send

HOSTILE = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>'


def bell(page):
    return page.get_by_role("button", name="Notifications")


def open_inbox(page):
    bell(page).click()
    panel = page.get_by_role("dialog", name="Notifications")
    expect(panel).to_be_visible()
    return panel


def entries(panel):
    return panel.get_by_role("list", name="Notifications list").get_by_role("listitem")


def weddings_page(open_app, wedding: Wedding, vendor: Vendor, **options):
    page = open_app(wedding.hub, vendor, **options)
    expect(page.get_by_role("status")).to_have_text("Live")
    expect(page.get_by_role("link", name="Smith & Jones")).to_be_visible()
    return page


def test_a_mention_rings_the_bell_live_and_opening_it_opens_the_thread(open_app, wedding: Wedding):
    florist = weddings_page(open_app, wedding, wedding.florist)
    expect(bell(florist)).to_have_accessible_name("Notifications")
    planner = open_thread(open_app, wedding, wedding.planner)

    send(planner, "@Fran Florist can you bring the peonies at 10?")
    sent = acknowledged(planner, "can you bring the peonies")
    # The mention the hub resolved is highlighted, as text.
    expect(sent.locator(".mention")).to_have_text("@Fran Florist")

    expect(bell(florist)).to_have_accessible_name("Notifications 1 unread")
    florist.evaluate("window.sameLoad = true")
    panel = open_inbox(florist)
    expect(entries(panel)).to_have_count(1)
    entry = entries(panel).first
    expect(entry).to_contain_text("Mentioned you")
    expect(entry).to_contain_text("Ceremony flowers · Smith & Jones")
    expect(entry).to_contain_text("Pat Planner: @Fran Florist can you bring the peonies at 10?")
    expect(entry).to_contain_text("Unread")

    entry.get_by_role("link").click()
    expect(panel).to_be_hidden()
    expect(florist.get_by_role("heading", name="Ceremony flowers")).to_be_visible()
    assert florist.url.endswith(f"#/t/{wedding.thread_id}")
    expect(bell(florist)).to_have_accessible_name("Notifications")
    # The florist's own copy highlights the mention of them.
    expect(acknowledged(florist, "can you bring the peonies").locator(".mention.me")).to_have_text(
        "@Fran Florist"
    )
    inbox = wedding.hub.call(wedding.florist, "GET", "/me/notifications")
    assert inbox["unread_count"] == 0
    assert [(n["reason"], n["read_at"] is not None) for n in inbox["notifications"]] == [
        ("mention", True)
    ]
    assert florist.evaluate("window.sameLoad") is True
    assert florist.errors == [] and planner.errors == []


def test_notifications_arrive_in_the_open_panel_and_mark_all_read_clears_them(
    open_app, wedding: Wedding
):
    florist = weddings_page(open_app, wedding, wedding.florist, viewport=DESKTOP)
    panel = open_inbox(florist)
    expect(panel.get_by_text("No notifications yet")).to_be_visible()

    wedding.post(wedding.planner, "@Fran Florist first: the arch")
    expect(entries(panel)).to_have_count(1)
    wedding.hub.call(
        wedding.planner,
        "POST",
        f"/threads/{wedding.thread_id}",
        {"kind": "change", "body": "Second: the arch moves to the lawn"},
    )
    expect(entries(panel)).to_have_count(2)
    expect(entries(panel).first).to_contain_text("Asks your organization to confirm")
    expect(entries(panel).first).to_contain_text("Second: the arch moves to the lawn")
    expect(entries(panel).first).to_contain_text("Ceremony flowers · Smith & Jones")
    expect(entries(panel).last).to_contain_text("Mentioned you")
    expect(panel.get_by_text("No notifications yet")).to_be_hidden()
    expect(bell(florist)).to_have_accessible_name("Notifications 2 unread")

    panel.get_by_role("button", name="Mark all read").click()
    expect(bell(florist)).to_have_accessible_name("Notifications")
    expect(panel.locator(".note-row.unread")).to_have_count(0)
    expect(entries(panel)).to_have_count(2)
    expect(panel.get_by_role("button", name="Mark all read")).to_be_disabled()
    assert wedding.hub.call(wedding.florist, "GET", "/me/notifications")["unread_count"] == 0

    panel.get_by_role("button", name="Close").click()
    expect(panel).to_be_hidden()
    expect(bell(florist)).to_be_focused()
    assert florist.errors == []


def test_reading_the_thread_on_another_device_clears_the_bell_and_the_inbox_live(
    open_app, wedding: Wedding
):
    wedding.post(wedding.planner, "@Fran Florist the arch at 10?")
    wedding.post(wedding.planner, "@Fran Florist and the petals at 11?")
    laptop = weddings_page(open_app, wedding, wedding.florist, viewport=DESKTOP)
    expect(bell(laptop)).to_have_accessible_name("Notifications 2 unread")
    panel = open_inbox(laptop)
    expect(laptop.locator(".note-row.unread")).to_have_count(2)

    # On the phone the florist reads the thread, without touching the inbox there: the hub
    # reads its notifications with the read mark, and the laptop hears of it.
    phone = open_thread(open_app, wedding, wedding.florist)
    expect(acknowledged(phone, "and the petals at 11?")).to_be_visible()
    expect(bell(laptop)).to_have_accessible_name("Notifications")
    expect(panel.locator(".note-row.unread")).to_have_count(0)
    expect(entries(panel)).to_have_count(2)
    expect(bell(phone)).to_have_accessible_name("Notifications")
    inbox = wedding.hub.call(wedding.florist, "GET", "/me/notifications")
    assert inbox["unread_count"] == 0
    assert all(n["read_at"] is not None for n in inbox["notifications"])
    assert laptop.errors == [] and phone.errors == []


def test_the_count_is_the_hubs_after_a_reload_and_an_urgent_one_shows_a_toast(
    open_app, wedding: Wedding
):
    wedding.post(wedding.planner, "@Fran Florist waiting since before you came")
    rain = wedding.thread("Rain plan", priority="urgent")
    florist = weddings_page(open_app, wedding, wedding.florist)
    expect(bell(florist)).to_have_accessible_name("Notifications 1 unread")

    wedding.post(wedding.planner, "@Fran Florist the marquee is up", thread_id=rain)
    toast = florist.locator(".toast")
    toast.hover()  # it stays while the pointer is on it
    expect(toast).to_contain_text("Urgent: Mentioned you")
    expect(toast).to_contain_text("Pat Planner in Rain plan")
    expect(bell(florist)).to_have_accessible_name("Notifications 2 unread")
    toast.get_by_role("link", name="Open").click()
    expect(florist.get_by_role("heading", name="Rain plan")).to_be_visible()
    expect(toast).to_have_count(0)
    expect(bell(florist)).to_have_accessible_name("Notifications 1 unread")

    florist.reload()
    expect(florist.get_by_role("status")).to_have_text("Live")
    expect(bell(florist)).to_have_accessible_name("Notifications 1 unread")
    assert florist.errors == []


def test_quiet_hours_and_time_zone_are_kept_and_a_bad_time_zone_shows_the_hubs_reason(
    open_app, wedding: Wedding
):
    page = open_app(wedding.hub, wedding.florist, path="#/settings")
    expect(page.get_by_role("heading", name="Notification settings")).to_be_visible()
    quiet = page.get_by_role("checkbox", name="Keep quiet hours")
    expect(quiet).not_to_be_checked()
    expect(page.get_by_label("From")).to_be_disabled()

    quiet.check()
    page.get_by_label("From").fill("21:30")
    page.get_by_label("To", exact=True).fill("06:45")
    page.get_by_label("Time zone").fill("Europe/Paris")
    page.get_by_role("checkbox", name="Only urgent things").check()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Saved.")).to_be_visible()

    page.reload()
    expect(page.get_by_role("checkbox", name="Keep quiet hours")).to_be_checked()
    expect(page.get_by_label("From")).to_have_value("21:30")
    expect(page.get_by_label("To", exact=True)).to_have_value("06:45")
    expect(page.get_by_label("Time zone")).to_have_value("Europe/Paris")
    expect(page.get_by_role("checkbox", name="Only urgent things")).to_be_checked()
    expect(page.get_by_role("checkbox", name="Mentions of me or my organization")).to_be_checked()
    prefs = wedding.hub.call(wedding.florist, "GET", "/me/notification-preferences")
    assert prefs["quiet_hours"] == {"start": "21:30", "end": "06:45"}
    assert (prefs["time_zone"], prefs["urgent_only"]) == ("Europe/Paris", True)

    with pytest.raises(RestError) as refused:
        wedding.hub.call(
            wedding.florist, "PUT", "/me/notification-preferences", {"time_zone": "Mars/Olympus"}
        )
    assert refused.value.status == 422
    error = json.loads(refused.value.body)["error"]
    page.get_by_label("Time zone").fill("Mars/Olympus")
    page.get_by_role("button", name="Save").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text(f"Not saved: {error['message']}")
    for detail in error["details"]:
        expect(alert).to_contain_text(detail["message"])
    expect(page.get_by_label("Time zone")).to_be_focused()
    expect(page.get_by_label("Time zone")).to_have_attribute("aria-invalid", "true")
    prefs = wedding.hub.call(wedding.florist, "GET", "/me/notification-preferences")
    assert prefs["time_zone"] == "Europe/Paris"

    page.get_by_role("checkbox", name="Keep quiet hours").uncheck()
    page.get_by_label("Time zone").fill("UTC")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Saved.")).to_be_visible()
    expect(page.get_by_role("alert")).to_be_hidden()
    prefs = wedding.hub.call(wedding.florist, "GET", "/me/notification-preferences")
    assert (prefs["quiet_hours"], prefs["time_zone"]) == (None, "UTC")
    assert page.errors == []


def test_email_consent_names_the_address_and_says_whether_email_is_active(
    open_app, wedding: Wedding
):
    fran = Vendor(
        wedding.florist.name,
        wedding.florist.org_id,
        user_id=wedding.florist.user_id,
        email="fran@florist.example",
    )
    page = open_app(wedding.hub, fran, viewport=PHONE)
    expect(page.get_by_role("status")).to_have_text("Live")
    page.get_by_role("link", name="Settings").click()
    consent = page.get_by_role(
        "checkbox", name="I agree to receive notification e-mail at fran@florist.example"
    )
    expect(consent).not_to_be_checked()
    expect(page.get_by_text("E-mail is not active until you agree to receive it.")).to_be_visible()

    consent.check()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Saved.")).to_be_visible()
    # This hub has no SMTP server: consent is kept, and the page says why no e-mail goes out.
    expect(page.get_by_text("E-mail is not active: this hub sends no e-mail.")).to_be_visible()
    prefs = wedding.hub.call(fran, "GET", "/me/notification-preferences")
    assert prefs["consent_at"] is not None and prefs["email_active"] is False
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]

    page.reload()
    expect(consent).to_be_checked()
    consent.uncheck()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Saved.")).to_be_visible()
    assert wedding.hub.call(fran, "GET", "/me/notification-preferences")["consent_at"] is None
    assert page.errors == []


def test_mute_is_kept_across_a_reload_and_stops_mentions_but_not_requests_to_confirm(
    open_app, wedding: Wedding
):
    page = open_thread(open_app, wedding, wedding.florist)
    mute = page.get_by_role("button", name="Mute")
    expect(mute).to_have_attribute("aria-pressed", "false")
    mute.click()
    expect(mute).to_have_attribute("aria-pressed", "true")
    expect(mute).to_have_text("Muted")

    page.reload()
    expect(page.get_by_role("status")).to_have_text("Live")
    expect(page.get_by_role("heading", name="Ceremony flowers")).to_be_visible()
    expect(mute).to_have_attribute("aria-pressed", "true")
    assert wedding.hub.call(wedding.florist, "GET", f"/threads/{wedding.thread_id}/mute")["muted"]

    wedding.post(wedding.planner, "@Fran Florist muted: no bell for this")
    wedding.hub.call(
        wedding.planner,
        "POST",
        f"/threads/{wedding.thread_id}",
        {"kind": "change", "body": "A change still asks you"},
    )
    expect(bell(page)).to_have_accessible_name("Notifications 1 unread")
    panel = open_inbox(page)
    expect(entries(panel)).to_have_count(1)
    expect(entries(panel).first).to_contain_text("Asks your organization to confirm")
    reasons = [
        n["reason"]
        for n in wedding.hub.call(wedding.florist, "GET", "/me/notifications")["notifications"]
    ]
    assert reasons == ["ack_request"]
    panel.get_by_role("button", name="Close").click()

    mute.click()
    expect(mute).to_have_attribute("aria-pressed", "false")
    expect(mute).to_have_text("Mute")
    assert not wedding.hub.call(wedding.florist, "GET", f"/threads/{wedding.thread_id}/mute")[
        "muted"
    ]
    assert page.errors == []


def test_hostile_names_and_bodies_show_as_text_in_the_notifications(open_app, wedding: Wedding):
    mallory = Vendor('<b onmouseover="window.pwned=3">Mal</b>', wedding.florist.org_id)
    wedding.hub.call(mallory, "GET", "/groups")
    hostile_thread = wedding.thread('<img src=x onerror="window.pwned=4">')
    planner = weddings_page(open_app, wedding, wedding.planner)
    dialogs = []
    planner.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))

    wedding.post(mallory, f"@Pat Planner {HOSTILE}", thread_id=hostile_thread)
    expect(bell(planner)).to_have_accessible_name("Notifications 1 unread")
    panel = open_inbox(planner)
    entry = entries(panel).first
    expect(entry).to_contain_text(f"{mallory.name}: @Pat Planner {HOSTILE}")
    expect(entry).to_contain_text('<img src=x onerror="window.pwned=4"> · Smith & Jones')
    assert panel.locator("img, script, b").count() == 0
    assert planner.evaluate("window.pwned") is None
    assert dialogs == []
    assert planner.errors == []
