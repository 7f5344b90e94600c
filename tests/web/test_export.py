""" "Your data" on the settings screen: a person downloads the archive of everything the hub
holds about them, an organization's owner the organization's too, others are not offered it,
and the hub's refusal shows as text."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

from playwright.sync_api import expect

from tests.web.conftest import Wedding
from tests.web.hubproc import Vendor

ORGANIZATION_BUTTON = "Download the organization\u2019s data"


def settings_page(open_app, wedding: Wedding, vendor: Vendor):
    page = open_app(wedding.hub, vendor, path="#/settings")
    expect(page.get_by_role("heading", name="Your data")).to_be_visible()
    return page


def save(page, button_name: str) -> zipfile.ZipFile:
    with page.expect_download() as waiting:
        page.get_by_role("button", name=button_name).click()
    download = waiting.value
    path = Path(download.path())
    zipped = zipfile.ZipFile(path)
    assert zipped.testzip() is None
    return zipped, download.suggested_filename


def test_a_person_downloads_their_data_with_their_messages(open_app, wedding: Wedding):
    wedding.post(wedding.florist, "Peonies arrive at noon")
    wedding.post(wedding.planner, "Planner's own words")
    page = settings_page(open_app, wedding, wedding.florist)

    zipped, filename = save(page, "Download my data")

    assert re.fullmatch(rf"hub-export-{wedding.florist.user_id}-\d{{4}}-\d\d-\d\d\.zip", filename)
    bodies = [m["body"] for m in json.loads(zipped.read("messages.json"))]
    assert bodies == ["Peonies arrive at noon"]
    manifest = json.loads(zipped.read("manifest.json"))
    assert manifest["subject"]["id"] == str(wedding.florist.user_id)
    expect(page.get_by_text(f"Downloaded {filename}")).to_be_visible()
    assert page.errors == []


def test_an_owner_downloads_the_organizations_data(open_app, wedding: Wedding):
    colleague = Vendor("Fay Vendor", wedding.florist.org_id, role="vendor")
    wedding.hub.call(colleague, "GET", "/me")
    page = settings_page(open_app, wedding, wedding.florist)

    zipped, filename = save(page, ORGANIZATION_BUTTON)

    assert filename.startswith(f"hub-export-organization-{wedding.florist.org_id}-")
    users = {u["display_name"] for u in json.loads(zipped.read("users.json"))}
    assert users == {"Fran Florist", "Fay Vendor"}


def test_only_owners_are_offered_the_organizations_data(open_app, wedding: Wedding):
    colleague = Vendor("Fay Vendor", wedding.florist.org_id, role="vendor")
    page = settings_page(open_app, wedding, colleague)

    expect(page.get_by_role("button", name="Download my data")).to_be_visible()
    expect(page.get_by_role("button", name=ORGANIZATION_BUTTON)).to_have_count(0)


def test_the_hubs_refusal_shows_as_text(open_app, wedding: Wedding):
    page = settings_page(open_app, wedding, wedding.florist)
    for _ in range(3):  # HUB_RATE_EXPORT_BURST's default
        save(page, "Download my data")

    page.get_by_role("button", name="Download my data").click()

    problem = page.get_by_role("alert").filter(has_text="Not downloaded")
    expect(problem).to_contain_text("too many export requests")
    expect(page.get_by_role("button", name="Download my data")).to_be_enabled()
