"""Organization and wedding settings in the web client: the organization's webhooks on the
settings screen (added with the secret shown once, listed, deleted after asking; a URL the hub
refuses shows its reason; managed by owners and admins alone), and a wedding's escalation policy
on its screen (changed by the owning organization's owners and admins, kept across a reload,
the hub's 422 shown; read-only for everyone else)."""

from __future__ import annotations

import json
import re
import uuid

import pytest
from playwright.sync_api import expect

from tests.web.conftest import DESKTOP, PHONE, Wedding
from tests.web.hubproc import RestError, Vendor

# A public-looking name passes the check at registration (names are resolved at delivery only).
HOOK = "https://hooks.example/hub"
SECRET = re.compile(r"^whsec_\S{20,}$")


def settings_page(open_app, wedding: Wedding, vendor: Vendor, **options):
    page = open_app(wedding.hub, vendor, path="#/settings", **options)
    expect(page.get_by_role("heading", name="Notification settings")).to_be_visible()
    return page


def webhooks_region(page):
    return page.get_by_role("region", name="Webhooks")


def webhook_rows(page):
    return page.get_by_role("list", name="Webhooks of the organization").get_by_role("listitem")


def refusal(error: RestError) -> dict:
    return json.loads(error.body)["error"]


def test_an_owner_adds_a_webhook_sees_its_secret_once_and_deletes_it(
    open_app, wedding_both: Wedding
):
    wedding = wedding_both
    page = settings_page(
        open_app, wedding, wedding.planner, permissions=["clipboard-read", "clipboard-write"]
    )
    region = webhooks_region(page)
    expect(region.get_by_text("No webhooks yet.")).to_be_visible()

    region.get_by_label("URL (https)").fill(HOOK)
    region.get_by_role("checkbox", name="Reminders to confirm").uncheck()
    region.get_by_role("checkbox", name="Escalations to owners and admins").uncheck()
    region.get_by_role("button", name="Add webhook").click()

    shown = page.get_by_role("region", name="New webhook secret")
    expect(shown).to_contain_text("Copy it now: it will not be shown again.")
    secret_box = shown.get_by_role("textbox", name=f"Secret of {HOOK}")
    expect(secret_box).to_have_value(SECRET)
    secret = secret_box.input_value()
    shown.get_by_role("button", name="Copy").click()
    expect(shown.get_by_text("Copied.")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == secret
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]

    listed = wedding.hub.call(wedding.planner, "GET", "/webhooks")["webhooks"]
    assert [(w["url"], w["events"]) for w in listed] == [
        (HOOK, ["ack_request", "mention", "org_mention"])
    ]
    assert "secret" not in listed[0]
    expect(webhook_rows(page)).to_have_count(1)
    row = webhook_rows(page).first
    expect(row).to_contain_text(HOOK)
    expect(row).to_contain_text(
        "Mentions of a person · Mentions of the organization · Requests to confirm"
    )
    expect(region.get_by_text("No webhooks yet.")).to_be_hidden()
    # The form is ready for another, with every event ticked again.
    expect(region.get_by_label("URL (https)")).to_have_value("")
    expect(region.get_by_role("checkbox", name="Reminders to confirm")).to_be_checked()

    page.reload()
    expect(webhook_rows(page)).to_have_count(1)
    expect(page.get_by_role("region", name="New webhook secret")).to_have_count(0)
    assert secret not in page.content()

    row = webhook_rows(page).first
    row.get_by_role("button", name=f"Delete the webhook to {HOOK}").click()
    expect(row).to_contain_text("Delete this webhook? Nothing more will be sent to it.")
    row.get_by_role("button", name="Keep it").click()
    expect(row.get_by_role("button", name=f"Delete the webhook to {HOOK}")).to_be_focused()
    assert len(wedding.hub.call(wedding.planner, "GET", "/webhooks")["webhooks"]) == 1

    row.get_by_role("button", name=f"Delete the webhook to {HOOK}").click()
    row.get_by_role("button", name="Delete it").click()
    expect(webhook_rows(page)).to_have_count(0)
    expect(region.get_by_text("No webhooks yet.")).to_be_visible()
    assert wedding.hub.call(wedding.planner, "GET", "/webhooks")["webhooks"] == []
    page.reload()
    expect(region.get_by_text("No webhooks yet.")).to_be_visible()
    assert page.errors == []


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/x", "https://127.0.0.1:9/x"])
def test_a_url_the_hub_refuses_shows_its_reason_and_nothing_is_added(
    open_app, wedding: Wedding, url: str
):
    with pytest.raises(RestError) as refused:
        wedding.hub.call(wedding.planner, "POST", "/webhooks", {"url": url})
    error = refusal(refused.value)
    page = settings_page(open_app, wedding, wedding.planner, viewport=DESKTOP)
    region = webhooks_region(page)
    expect(region.get_by_text("No webhooks yet.")).to_be_visible()

    region.get_by_label("URL (https)").fill(url)
    region.get_by_role("button", name="Add webhook").click()
    alert = region.get_by_role("alert").filter(has_text="Not added")
    expect(alert).to_have_text(f"Not added: {error['message']}")
    expect(region.get_by_label("URL (https)")).to_be_focused()
    expect(region.get_by_label("URL (https)")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_role("region", name="New webhook secret")).to_have_count(0)
    expect(webhook_rows(page)).to_have_count(0)
    assert wedding.hub.call(wedding.planner, "GET", "/webhooks")["webhooks"] == []
    assert page.errors == []


def test_a_url_made_of_html_is_listed_as_its_characters(open_app, wedding: Wedding):
    hostile = 'https://hooks.example/<img/src=x/onerror="window.pwned=1">'
    wedding.hub.call(wedding.planner, "POST", "/webhooks", {"url": hostile})
    page = settings_page(open_app, wedding, wedding.planner)
    expect(webhook_rows(page)).to_have_count(1)
    expect(webhook_rows(page).first).to_contain_text(hostile)
    assert webhooks_region(page).locator("img").count() == 0
    assert page.evaluate("window.pwned") is None


def test_a_plain_member_sees_no_webhook_controls(open_app, wedding: Wedding):
    wedding.hub.call(wedding.florist, "POST", "/webhooks", {"url": HOOK})
    helper = Vendor("Hal Helper", wedding.florist.org_id, role="vendor")
    with pytest.raises(RestError) as refused:
        wedding.hub.call(helper, "GET", "/webhooks")
    assert refused.value.status == 403

    page = settings_page(open_app, wedding, helper)
    region = webhooks_region(page)
    expect(region.get_by_text("owners and admins manage its webhooks")).to_be_visible()
    expect(region.get_by_role("button")).to_have_count(0)
    expect(region.get_by_role("textbox")).to_have_count(0)
    expect(page.get_by_role("list", name="Webhooks of the organization")).to_have_count(0)
    # The person's own settings are still theirs to change.
    expect(page.get_by_role("button", name="Save")).to_be_visible()
    assert page.errors == []


# --- the escalation policy -----------------------------------------------------------------------


def wedding_page(open_app, wedding: Wedding, vendor: Vendor, **options):
    page = open_app(wedding.hub, vendor, path=f"#/g/{wedding.group_id}", **options)
    expect(page.get_by_role("heading", name="Smith & Jones")).to_be_visible()
    return page


def policy_row(page, term: str):
    return (
        page.get_by_role("region", name="Escalation")
        .locator(".policy-row")
        .filter(has=page.locator("dt", has_text=term))
    )


def test_the_weddings_owner_changes_the_escalation_policy(open_app, wedding_both: Wedding):
    wedding = wedding_both
    policy_path = f"/groups/{wedding.group_id}/escalation-policy"
    page = wedding_page(open_app, wedding, wedding.planner)
    region = page.get_by_role("region", name="Escalation")
    expect(policy_row(page, "More than a week before")).to_contain_text("every hour")
    expect(policy_row(page, "3 to 7 days before")).to_contain_text("every 30 minutes")
    expect(policy_row(page, "On the wedding day")).to_contain_text("every 5 minutes")
    expect(policy_row(page, "Owners and admins told too")).to_contain_text(
        "after 3 unanswered reminders"
    )
    expect(region.get_by_text("Set by the owners and admins")).to_be_hidden()

    region.get_by_text("Change the escalation policy").click()
    expect(region.get_by_label("More than a week before")).to_have_value("60")
    region.get_by_label("More than a week before").fill("120")
    region.get_by_label("3 to 7 days before").fill("45")
    region.get_by_label("1 or 2 days before").fill("20")
    region.get_by_label("On the wedding day").fill("10")
    region.get_by_label("Tell owners and admins too after this many reminders").fill("2")
    region.get_by_label("Without a wedding date, stop after this many reminders").fill("12")
    region.get_by_label("Time zone of the wedding").fill("Europe/London")
    region.get_by_role("button", name="Save policy").click()
    expect(region.get_by_text("Saved.")).to_be_visible()
    expect(policy_row(page, "More than a week before")).to_contain_text("every 2 hours")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]

    page.reload()
    expect(policy_row(page, "More than a week before")).to_contain_text("every 2 hours")
    expect(policy_row(page, "3 to 7 days before")).to_contain_text("every 45 minutes")
    expect(policy_row(page, "1 or 2 days before")).to_contain_text("every 20 minutes")
    expect(policy_row(page, "On the wedding day")).to_contain_text("every 10 minutes")
    expect(policy_row(page, "Owners and admins told too")).to_contain_text(
        "after 2 unanswered reminders"
    )
    expect(policy_row(page, "Without a wedding date")).to_contain_text(
        "every 2 hours, at most 12 reminders"
    )
    expect(policy_row(page, "Days counted in")).to_contain_text("Europe/London")
    region.get_by_text("Change the escalation policy").click()
    expect(region.get_by_label("3 to 7 days before")).to_have_value("45")
    expect(region.get_by_label("Time zone of the wedding")).to_have_value("Europe/London")
    stored = wedding.hub.call(wedding.planner, "GET", policy_path)
    assert stored == {
        "group_id": wedding.group_id,
        "enabled": True,
        "time_zone": "Europe/London",
        "more_than_week_minutes": 120,
        "within_week_minutes": 45,
        "last_two_days_minutes": 20,
        "wedding_day_minutes": 10,
        "escalate_after": 2,
        "max_reminders_without_date": 12,
        "may_change": True,
    }

    # Longer on the day than two days before: the hub's rule, and its words.
    with pytest.raises(RestError) as refused:
        wedding.hub.call(
            wedding.planner,
            "PUT",
            policy_path,
            {"wedding_day_minutes": 30},
        )
    assert refused.value.status == 422
    error = refusal(refused.value)
    region.get_by_label("On the wedding day").fill("30")
    region.get_by_role("button", name="Save policy").click()
    alert = region.get_by_role("alert").filter(has_text="Not saved")
    expect(alert).to_have_text(f"Not saved: {error['message']}")
    assert [d["field"] for d in error["details"]] == ["wedding_day_minutes"]
    expect(region.get_by_label("On the wedding day")).to_be_focused()
    expect(region.get_by_label("On the wedding day")).to_have_attribute("aria-invalid", "true")
    expect(policy_row(page, "On the wedding day")).to_contain_text("every 10 minutes")
    assert wedding.hub.call(wedding.planner, "GET", policy_path)["wedding_day_minutes"] == 10

    region.get_by_label("On the wedding day").fill("5")
    region.get_by_role("checkbox", name="Remind organizations that have not confirmed").uncheck()
    region.get_by_role("button", name="Save policy").click()
    expect(region.get_by_text("Saved.")).to_be_visible()
    expect(alert).to_have_count(0)
    expect(policy_row(page, "Reminders")).to_contain_text("Off: nobody is reminded")
    stored = wedding.hub.call(wedding.planner, "GET", policy_path)
    assert (stored["enabled"], stored["wedding_day_minutes"]) == (False, 5)
    assert page.errors == []


def test_other_members_see_the_escalation_policy_read_only(open_app, wedding: Wedding):
    path = f"/groups/{wedding.group_id}/escalation-policy"
    wedding.hub.call(wedding.planner, "PUT", path, {"more_than_week_minutes": 90})
    assistant = Vendor("Max Manager", wedding.planner.org_id, role="manager")
    for vendor in (wedding.florist, assistant):
        with pytest.raises(RestError) as refused:
            wedding.hub.call(vendor, "PUT", path, {"more_than_week_minutes": 30})
        assert refused.value.status == 403
        assert wedding.hub.call(vendor, "GET", path)["more_than_week_minutes"] == 90

    for vendor, viewport in ((wedding.florist, PHONE), (assistant, DESKTOP)):
        page = wedding_page(open_app, wedding, vendor, viewport=viewport)
        region = page.get_by_role("region", name="Escalation")
        expect(policy_row(page, "More than a week before")).to_contain_text("every 1 h 30 min")
        expect(
            region.get_by_text(
                "Set by the owners and admins of the organization that owns this wedding."
            )
        ).to_be_visible()
        expect(region.get_by_text("Change the escalation policy")).to_be_hidden()
        expect(region.get_by_role("button")).to_have_count(0)
        expect(region.get_by_role("spinbutton")).to_have_count(0)
        assert page.errors == []


def test_a_wedding_of_other_organizations_shows_no_policy(open_app, wedding: Wedding):
    stranger = Vendor("Sam Stranger", uuid.uuid4())
    page = open_app(wedding.hub, stranger, path=f"#/g/{wedding.group_id}")
    expect(page.get_by_text("This wedding does not exist")).to_be_visible()
    expect(page.locator("section.escalation")).to_be_hidden()
    expect(page.get_by_text("Could not load the escalation policy")).to_have_count(0)
    assert page.errors == []
