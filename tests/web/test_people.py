""" "People of <organization>" on the settings screen, for its owners and admins: the
organization's users with their roles, "Erase" by those the caller may erase (not themselves),
a typed confirmation (their name or `erase`), then the row says "Erased" and the person's
token opens nothing more. A vendor sees no such section."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.web.conftest import Wedding
from tests.web.hubproc import RestError, Vendor


def test_an_owner_erases_a_colleague(open_app, wedding: Wedding):
    florist = wedding.florist  # the owner of the florist's organization
    colleague = Vendor("Cole <b>League</b>", florist.org_id, role="vendor")
    wedding.hub.call(colleague, "GET", "/me")  # the hub meets them
    page = open_app(wedding.hub, florist, path="#/settings")
    organization = wedding.hub.call(florist, "GET", "/me")["organization_name"]
    section = page.get_by_role("region", name=f"People of {organization}")
    rows = section.locator("li.person")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("Cole <b>League</b>")  # as text, never as HTML
    expect(rows.nth(0)).to_contain_text("Vendor")
    expect(rows.nth(1)).to_contain_text("Fran Florist")
    expect(rows.nth(1)).to_contain_text("Owner · you")
    expect(rows.nth(1).get_by_role("button", name="Erase")).to_have_count(0)
    expect(section).not_to_contain_text("Pat Planner")  # another organization's

    rows.nth(0).get_by_role("button", name="Erase Cole <b>League</b>").click()
    confirm = rows.nth(0).get_by_role("form", name="Erase Cole <b>League</b>")
    expect(confirm).to_contain_text("This cannot be undone")
    go = confirm.get_by_role("button", name="Erase Cole <b>League</b>")
    typed = confirm.get_by_label("Type their name (Cole <b>League</b>) or erase to confirm")
    expect(go).to_be_disabled()
    typed.fill("Cole")
    expect(go).to_be_disabled()
    typed.fill("Cole <b>League</b>")
    expect(go).to_be_enabled()
    go.click()

    expect(rows.nth(0)).to_contain_text("Erased")
    expect(rows.nth(0).get_by_role("button")).to_have_count(0)
    with pytest.raises(RestError) as refused:
        wedding.hub.call(colleague, "GET", "/me")
    assert refused.value.status == 401 and "this user was erased" in refused.value.body
    listed = wedding.hub.call(florist, "GET", "/me/organization/users")["items"]
    assert [(p["display_name"], p["erased"]) for p in listed] == [
        ("Fran Florist", False),
        ("Erased user", True),
    ]
    assert page.errors == []


def test_a_refusal_from_the_hub_is_shown_as_text(open_app, wedding: Wedding):
    admin = Vendor("Ada Admin", wedding.florist.org_id, role="admin")
    colleague = Vendor("Cole League", wedding.florist.org_id, role="vendor")
    wedding.hub.call(colleague, "GET", "/me")
    page = open_app(wedding.hub, admin, path="#/settings")
    owner_row = page.locator("li.person", has_text="Fran Florist")
    expect(owner_row).to_contain_text("Owner")
    expect(owner_row.get_by_role("button")).to_have_count(0)  # an admin does not erase an owner
    row = page.locator("li.person", has_text="Cole League")
    row.get_by_role("button", name="Erase Cole League").click()
    # Made an owner meanwhile (their next token says so): the hub refuses, the row says why.
    colleague.role = "owner"
    wedding.hub.call(colleague, "GET", "/me")
    row.get_by_label("Type their name (Cole League) or erase to confirm").fill("erase")
    row.get_by_role("form").get_by_role("button", name="Erase Cole League").click()
    expect(row.get_by_role("alert")).to_contain_text(
        "Not erased: only an owner erases an owner of the organization"
    )
    expect(row.locator(".state")).to_have_text("")
    wedding.hub.call(colleague, "GET", "/me")  # still let in
    assert page.errors == []


def test_a_vendor_sees_no_people_section(open_app, wedding: Wedding):
    vendor = Vendor("Val Vendor", wedding.florist.org_id, role="vendor")
    page = open_app(wedding.hub, vendor, path="#/settings")
    expect(page.get_by_role("form", name="Delete my account")).to_be_visible()
    expect(page.get_by_role("region", name="People of", exact=False)).to_have_count(0)
    expect(page.locator("li.person")).to_have_count(0)
    assert page.errors == []
