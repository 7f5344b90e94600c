"""A wedding's data retention in the web client: every member sees when the wedding becomes
read-only and when its messages and files are deleted, and any legal hold; the owning
organization's owners and admins change the days (the hub's 422 shown as text, with the focus on
the field it names) and place and lift a hold; everyone else sees it read-only."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

from tests.web.conftest import PHONE, Wedding
from tests.web.hubproc import RestError


def wedding_page(open_app, wedding: Wedding, vendor, **options):
    page = open_app(wedding.hub, vendor, path=f"#/g/{wedding.group_id}", **options)
    expect(page.get_by_role("heading", name="Smith & Jones")).to_be_visible()
    return page


def row(page, term: str):
    return (
        page.get_by_role("region", name="Data retention")
        .locator(".policy-row")
        .filter(has=page.locator("dt", has_text=term))
    )


def test_the_weddings_owner_changes_the_retention_and_holds_it(open_app, wedding: Wedding):
    path = f"/groups/{wedding.group_id}/retention"
    page = wedding_page(open_app, wedding, wedding.planner)
    region = page.get_by_role("region", name="Data retention")
    # The wedding is on 2027-06-12: read-only 30 days after, deleted 365 days after.
    expect(row(page, "Counted from")).to_contain_text("the wedding day")
    expect(row(page, "Read-only from")).to_contain_text("2027")
    expect(row(page, "Read-only from")).to_contain_text("30 days after")
    expect(row(page, "Messages and files deleted")).to_contain_text("2028")
    expect(row(page, "Messages and files deleted")).to_contain_text("365 days after")
    expect(row(page, "Legal hold")).to_contain_text("None")
    expect(region.get_by_text("Set by the owners and admins")).to_be_hidden()

    region.get_by_text("Change the data retention").click()
    expect(region.get_by_label("Days after the wedding until read-only")).to_have_value("30")
    region.get_by_label("Days after the wedding until deleted").fill("90")
    region.get_by_role("button", name="Save retention").click()
    expect(region.get_by_text("Saved.")).to_be_visible()
    expect(row(page, "Messages and files deleted")).to_contain_text("90 days after")
    assert wedding.hub.call(wedding.planner, "GET", path)["retention_days_after_wedding"] == 90

    # Read-only after deletion: the hub's rule, in its words, on the field it names.
    with pytest.raises(RestError) as refused:
        wedding.hub.call(wedding.planner, "PUT", path, {"archive_days_after_wedding": 120})
    error = json.loads(refused.value.body)["error"]
    region.get_by_label("Days after the wedding until read-only").fill("120")
    region.get_by_role("button", name="Save retention").click()
    alert = region.get_by_role("alert").filter(has_text="Not saved")
    expect(alert).to_have_text(f"Not saved: {error['message']}")
    field = region.get_by_label("Days after the wedding until read-only")
    expect(field).to_be_focused()
    expect(field).to_have_attribute("aria-invalid", "true")
    assert wedding.hub.call(wedding.planner, "GET", path)["archive_days_after_wedding"] == 30

    region.get_by_label("Reason for a legal hold").fill("Claim 2027-118 pending")
    region.get_by_role("button", name="Place legal hold").click()
    expect(region.get_by_text("Legal hold placed.")).to_be_visible()
    expect(row(page, "Legal hold")).to_contain_text("Claim 2027-118 pending")
    shown = wedding.hub.call(wedding.planner, "GET", path)
    assert shown["legal_hold"]["reason"] == "Claim 2027-118 pending"

    page.reload()
    expect(row(page, "Legal hold")).to_contain_text("Claim 2027-118 pending")
    region.get_by_text("Change the data retention").click()
    region.get_by_role("button", name="Lift legal hold").click()
    expect(region.get_by_text("Legal hold lifted.")).to_be_visible()
    expect(row(page, "Legal hold")).to_contain_text("None")
    assert wedding.hub.call(wedding.planner, "GET", path)["legal_hold"] is None
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    assert page.errors == []


def test_a_hold_with_no_reason_shows_the_hubs_refusal(open_app, wedding: Wedding):
    page = wedding_page(open_app, wedding, wedding.planner)
    region = page.get_by_role("region", name="Data retention")
    region.get_by_text("Change the data retention").click()
    region.get_by_role("button", name="Place legal hold").click()
    expect(region.get_by_role("alert").filter(has_text="Not saved")).to_contain_text("reason")
    expect(region.get_by_label("Reason for a legal hold")).to_be_focused()
    assert (
        wedding.hub.call(wedding.planner, "GET", f"/groups/{wedding.group_id}/retention")[
            "legal_hold"
        ]
        is None
    )
    assert page.errors == []


def test_other_members_see_the_retention_and_the_hold_read_only(open_app, wedding: Wedding):
    wedding.hub.call(
        wedding.planner,
        "PUT",
        f"/groups/{wedding.group_id}/legal-hold",
        {"reason": "Insurance claim"},
    )
    page = wedding_page(open_app, wedding, wedding.florist)
    region = page.get_by_role("region", name="Data retention")
    expect(row(page, "Legal hold")).to_contain_text("Insurance claim")
    expect(row(page, "Messages and files deleted")).to_contain_text("365 days after")
    expect(
        region.get_by_text(
            "Set by the owners and admins of the organization that owns this wedding."
        )
    ).to_be_visible()
    expect(region.get_by_text("Change the data retention")).to_be_hidden()
    expect(region.get_by_role("button")).to_have_count(0)
    assert page.errors == []
