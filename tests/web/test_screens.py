"""The web client's screens as a person uses them: weddings with unread badges, invitations,
threads urgent first, creating a thread, history paging back, location, keyboard-only use."""

from __future__ import annotations

import uuid

from playwright.sync_api import expect

from tests.web.conftest import DESKTOP, PHONE, Wedding
from tests.web.hubproc import Vendor
from tests.web.test_live import acknowledged, messages, open_thread, send


def test_unread_badges_count_down_as_the_florist_reads(open_app, wedding: Wedding):
    for n in range(3):
        wedding.post(wedding.planner, f"update {n}")
    florist = open_app(wedding.hub, wedding.florist)
    wedding_card = florist.get_by_role("link", name="Smith & Jones")
    expect(wedding_card.get_by_label("3 unread")).to_be_visible()

    wedding_card.click()
    thread_card = florist.get_by_role("link", name="Ceremony flowers")
    expect(thread_card.get_by_label("3 unread")).to_be_visible()
    thread_card.click()
    expect(messages(florist)).to_have_count(3)
    # Each message carries its unread mark until it has been on screen, then the mark goes.
    expect(florist.locator("article.unread")).to_have_count(0)

    florist.get_by_role("link", name="← Threads").click()
    expect(florist.get_by_role("link", name="Ceremony flowers")).to_be_visible()
    expect(
        florist.get_by_role("link", name="Ceremony flowers").get_by_label("3 unread")
    ).to_have_count(0)
    florist.get_by_role("link", name="← All weddings").click()
    expect(florist.get_by_role("link", name="Smith & Jones")).to_be_visible()
    expect(florist.locator(".badge")).to_have_count(0)
    detail = wedding.hub.call(wedding.florist, "GET", f"/threads/{wedding.thread_id}")
    assert detail["thread"]["unread_count"] == 0
    assert detail["thread"]["last_read_seq"] == 3


def test_urgent_thread_sorts_first_and_filters_narrow_the_list(open_app, wedding: Wedding):
    wedding.thread("Cake table", priority="low")
    wedding.thread("Rain plan", priority="urgent")
    page = open_app(wedding.hub, wedding.florist, path=f"#/g/{wedding.group_id}")
    threads = page.get_by_role("list", name="Threads").get_by_role("link")
    expect(threads).to_have_count(3)
    expect(threads.first).to_contain_text("Rain plan")
    expect(threads.first).to_contain_text("urgent")
    expect(threads.last).to_contain_text("Cake table")

    page.get_by_label("Priority").first.select_option("urgent")
    expect(threads).to_have_count(1)
    expect(threads.first).to_contain_text("Rain plan")


def test_a_thread_created_with_a_priority(open_app, wedding: Wedding):
    page = open_app(wedding.hub, wedding.planner, path=f"#/g/{wedding.group_id}")
    form = page.locator("form", has=page.get_by_role("heading", name="New thread"))
    form.get_by_label("Title").fill("Generator for the marquee")
    form.get_by_label("Priority").select_option("high")
    form.get_by_label("First message (optional)").fill("Who brings it?")
    form.get_by_role("button", name="Create thread").click()

    expect(page.get_by_role("heading", name="Generator for the marquee")).to_be_visible()
    expect(messages(page).filter(has_text="Who brings it?")).to_have_count(1)
    threads = wedding.hub.call(wedding.planner, "GET", f"/threads?group_id={wedding.group_id}")
    created = [t for t in threads["items"] if t["title"] == "Generator for the marquee"]
    assert [(t["priority"], t["message_count"]) for t in created] == [("high", 1)]


def test_an_owner_invites_and_the_invited_owner_accepts(open_app, web_hub):
    planner = Vendor("Pat Planner", uuid.uuid4())
    caterer = Vendor("Cal Caterer", uuid.uuid4())
    web_hub.call(caterer, "GET", "/me")  # the caterer's organization exists once seen
    page = open_app(web_hub, planner, viewport=DESKTOP)
    form = page.locator("form", has=page.get_by_role("heading", name="New wedding"))
    form.get_by_label("Name").fill("Lee & Kim")
    form.get_by_label("Wedding date").fill("2027-09-04")
    form.get_by_role("button", name="Create wedding").click()
    expect(page.get_by_role("heading", name="Lee & Kim")).to_be_visible()

    invite = page.locator("form", has=page.get_by_role("heading", name="Invite an organization"))
    invite.get_by_label("Organization ID").fill(str(caterer.org_id))
    invite.get_by_label("Vendor type").select_option("caterer")
    invite.get_by_role("button", name="Invite").click()
    expect(page.get_by_role("region", name="Members")).to_contain_text("caterer · vendor · invited")

    other = open_app(web_hub, caterer)
    invitations = other.get_by_role("region", name="Invitations")
    expect(invitations).to_contain_text("Lee & Kim")
    expect(other.get_by_role("list", name="Weddings")).not_to_contain_text("Lee & Kim")
    invitations.get_by_role("button", name="Accept").click()
    expect(other.get_by_role("link", name="Lee & Kim")).to_be_visible()
    expect(invitations).to_be_hidden()
    assert [g["name"] for g in web_hub.call(caterer, "GET", "/groups")["items"]] == ["Lee & Kim"]


def test_a_vendor_of_another_role_sees_no_invitation_controls(open_app, wedding: Wedding):
    helper = Vendor("Hal Helper", wedding.florist.org_id, role="vendor")
    page = open_app(wedding.hub, helper, path=f"#/g/{wedding.group_id}")
    expect(page.get_by_role("region", name="Members")).to_contain_text("florist")
    expect(page.get_by_role("heading", name="Invite an organization")).to_have_count(0)
    page.get_by_role("link", name="← All weddings").click()
    expect(page.get_by_role("link", name="Smith & Jones")).to_be_visible()
    expect(page.get_by_role("heading", name="New wedding")).to_have_count(0)


def test_history_pages_back_as_you_scroll_up(open_app, wedding: Wedding):
    for n in range(1, 121):
        wedding.post(wedding.planner, f"line {n:03d}")
    # The sender's own view opens at the newest message (another reader's at the first unread).
    page = open_thread(open_app, wedding, wedding.planner)
    expect(messages(page)).to_have_count(50)
    expect(messages(page).first).to_contain_text("line 071")
    log = page.get_by_role("log", name="Messages")
    for expected in (100, 120):
        log.evaluate("el => el.scrollTo(0, 0)")
        expect(messages(page)).to_have_count(expected)
    expect(messages(page).first).to_contain_text("line 001")
    texts = [t.split("\n") for t in messages(page).all_inner_texts()]
    bodies = [line for parts in texts for line in parts if line.startswith("line ")]
    assert bodies == [f"line {n:03d}" for n in range(1, 121)]


def test_a_location_from_the_browser(open_app, wedding: Wedding):
    page = open_thread(
        open_app,
        wedding,
        wedding.florist,
        geolocation={"latitude": 51.5014, "longitude": -0.1419},
        permissions=["geolocation"],
    )
    page.get_by_role("textbox", name="Message").fill("Van parked here")
    page.get_by_role("button", name="Share location").click()
    shared = messages(page).filter(has_text="Van parked here")
    expect(shared).to_contain_text("51.50140, -0.14190")
    expect(shared.get_by_role("link", name="Open map")).to_have_attribute(
        "href",
        "https://www.openstreetmap.org/?mlat=51.501400&mlon=-0.141900#map=17/51.501400/-0.141900",
    )
    stored = wedding.history(wedding.planner)
    assert [(m["kind"], m["body"], m["metadata"]) for m in stored] == [
        ("location", "Van parked here", {"latitude": 51.5014, "longitude": -0.1419})
    ]


def test_keyboard_alone_opens_a_thread_and_sends(open_app, wedding: Wedding):
    page = open_app(wedding.hub, wedding.florist, viewport=PHONE)
    expect(page.get_by_role("link", name="Smith & Jones")).to_be_visible()

    def tab_to(locator, limit=40):
        for _ in range(limit):
            page.keyboard.press("Tab")
            if locator.evaluate("el => el === document.activeElement"):
                return
        raise AssertionError(f"Tab never reached {locator}")

    tab_to(page.get_by_role("link", name="Smith & Jones"))
    page.keyboard.press("Enter")
    tab_to(page.get_by_role("link", name="Ceremony flowers"))
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_have_text("Live")
    tab_to(page.get_by_role("textbox", name="Message"))
    page.keyboard.type("Sent without a mouse")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("second line")
    page.keyboard.press("Enter")

    expect(acknowledged(page, "Sent without a mouse")).to_have_count(1)
    assert [m["body"] for m in wedding.history(wedding.planner)] == [
        "Sent without a mouse\nsecond line"
    ]


def test_reply_quotes_the_message_it_answers(open_app, wedding: Wedding):
    first = wedding.post(wedding.planner, "Ceremony at 3pm now")
    page = open_thread(open_app, wedding, wedding.florist)
    original = messages(page).filter(has_text="Ceremony at 3pm now")
    original.get_by_role("button", name="Reply").click()
    expect(page.get_by_text("Replying to Pat Planner: Ceremony at 3pm now")).to_be_visible()
    send(page, "Noted, flowers by 2")
    reply = messages(page).filter(has_text="Noted, flowers by 2")
    expect(reply).to_contain_text("↪ Pat Planner: Ceremony at 3pm now")
    stored = wedding.history(wedding.planner)
    assert stored[-1]["reply_to"] == first["id"]


def test_no_screen_is_wider_than_a_phone(open_app, wedding: Wedding):
    long_word = "Marquee" * 40
    wedding.post(wedding.planner, long_word)
    long_thread = wedding.thread("Setup " + "x" * 150)
    page = open_app(wedding.hub, wedding.florist, viewport=PHONE)
    for path, ready in (
        ("#/", page.get_by_role("link", name="Smith & Jones")),
        (f"#/g/{wedding.group_id}", page.get_by_role("list", name="Threads")),
        (f"#/t/{wedding.thread_id}", messages(page).filter(has_text=long_word)),
        (f"#/t/{long_thread}", page.get_by_role("textbox", name="Message")),
    ):
        page.evaluate(f"location.hash = {path!r}")
        expect(ready).to_be_visible()
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], (path, width)
        # The composer and its Send button stay on screen on the thread screens.
        if path.startswith("#/t/"):
            box = page.get_by_role("button", name="Send").bounding_box()
            assert box["x"] + box["width"] <= PHONE["width"]
            assert box["y"] + box["height"] <= PHONE["height"]


def test_a_session_about_to_end_offers_to_renew_it(open_app, wedding: Wedding):
    ending = Vendor(
        wedding.florist.name, wedding.florist.org_id, user_id=wedding.florist.user_id, ttl_s=90
    )
    page = open_thread(open_app, wedding, ending)
    expect(page.get_by_text("Your session ends at")).to_be_visible()
    page.get_by_role("button", name="Renew").click()
    expect(page.get_by_role("heading", name="Renew your session")).to_be_visible()
    page.get_by_label("Access token").fill(wedding.florist.token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text("Your session ends at")).to_be_hidden()
    expect(page.get_by_role("status")).to_have_text("Live")
    send(page, "renewed without losing the thread")
    expect(messages(page).filter(has_text="renewed without losing")).to_have_count(1)


def test_on_a_desktop_the_weddings_threads_stand_beside_the_thread(open_app, wedding: Wedding):
    rain = wedding.thread("Rain plan", priority="urgent")
    wedding.post(wedding.planner, "Marquee booked", thread_id=rain)
    page = open_thread(open_app, wedding, wedding.florist, viewport=DESKTOP)
    side = page.get_by_role("complementary", name="Threads of this wedding")
    links = side.get_by_role("link")
    expect(links.filter(has_text="Rain plan").get_by_label("1 unread")).to_be_visible()
    expect(side.get_by_role("list").get_by_role("link").first).to_contain_text("Rain plan")
    expect(side.locator("[aria-current=page]")).to_contain_text("Ceremony flowers")

    links.filter(has_text="Rain plan").click()
    expect(page.get_by_role("heading", name="Rain plan")).to_be_visible()
    expect(messages(page).filter(has_text="Marquee booked")).to_have_count(1)
    expect(side.locator("[aria-current=page]")).to_contain_text("Rain plan")
    assert page.errors == []


def test_searching_threads_by_title(open_app, wedding: Wedding):
    wedding.thread("Rain plan")
    wedding.thread("Cake table")
    page = open_app(wedding.hub, wedding.florist, path=f"#/g/{wedding.group_id}")
    threads = page.get_by_role("list", name="Threads").get_by_role("link")
    expect(threads).to_have_count(3)
    page.get_by_label("Search threads").fill("cake")
    expect(threads).to_have_count(1)
    expect(threads.first).to_contain_text("Cake table")
    page.get_by_label("Search threads").fill("")
    expect(threads).to_have_count(3)


def test_a_manager_changes_priority_and_resolves_from_the_thread(open_app, wedding: Wedding):
    page = open_thread(open_app, wedding, wedding.planner)
    page.get_by_label("Priority").select_option("urgent")
    expect(page.get_by_text("urgent", exact=True)).to_be_visible()
    page.get_by_role("button", name="Mark resolved").click()
    expect(page.get_by_role("button", name="Reopen")).to_be_visible()
    thread = wedding.hub.call(wedding.planner, "GET", f"/threads/{wedding.thread_id}")["thread"]
    assert (thread["priority"], thread["status"]) == ("urgent", "resolved")

    page.get_by_role("link", name="← Threads").click()
    threads = page.get_by_role("list", name="Threads").get_by_role("link")
    expect(threads).to_have_count(0)  # the list shows open threads first
    page.get_by_label("Status", exact=True).select_option("resolved")
    expect(threads).to_have_count(1)
    expect(threads.first).to_contain_text("Ceremony flowers")


def test_a_declined_invitation_leaves_the_list_and_grants_nothing(open_app, web_hub):
    planner = Vendor("Pat Planner", uuid.uuid4())
    dj = Vendor("Dee DJ", uuid.uuid4())
    web_hub.call(dj, "GET", "/me")
    group = web_hub.call(planner, "POST", "/groups", {"name": "Lee & Kim"})
    web_hub.call(planner, "POST", f"/groups/{group['id']}", {"organization_id": str(dj.org_id)})
    page = open_app(web_hub, dj)
    invitations = page.get_by_role("region", name="Invitations")
    invitations.get_by_role("button", name="Decline").click()
    expect(page.get_by_text("You declined Lee & Kim.")).to_be_visible()
    expect(invitations).to_be_hidden()
    expect(page.get_by_role("list", name="Weddings")).to_contain_text("No weddings yet.")
    assert web_hub.call(dj, "GET", "/groups")["items"] == []
    assert web_hub.call(dj, "GET", "/invitations")["items"] == []


def test_a_message_the_hub_refuses_is_marked_not_sent_and_can_be_discarded(
    open_app, wedding: Wedding
):
    page = open_thread(open_app, wedding, wedding.florist)
    wedding.hub.call(wedding.planner, "DELETE", f"/threads/{wedding.thread_id}")  # archived
    send(page, "too late for this thread")
    refused = messages(page).filter(has_text="too late for this thread")
    expect(refused).to_contain_text("Not sent:")
    expect(refused).to_contain_text("archived")
    refused.get_by_role("button", name="Discard").click()
    expect(refused).to_have_count(0)
    assert wedding.history(wedding.planner) == []
    assert page.evaluate("sessionStorage.getItem('hub.outbox')") == "[]"
