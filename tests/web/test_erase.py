""" "Delete my account" on the settings screen: it says what goes and what stays, stays
disabled until `erase` is typed, and once the hub has erased the person the page signs out
saying the account is gone; the token opens nothing after, and others read the person's
messages as deleted, sent by "Erased user"."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.web.conftest import Wedding
from tests.web.hubproc import RestError


def test_a_person_deletes_their_account_after_typing_erase(open_app, wedding: Wedding):
    wedding.post(wedding.florist, "My number is 07700 900123")
    wedding.post(wedding.planner, "Thanks, noted")
    page = open_app(wedding.hub, wedding.florist, path="#/settings")
    section = page.get_by_role("form", name="Delete my account")
    expect(section).to_contain_text("This cannot be undone")
    expect(section).to_contain_text("What stays: other people\u2019s messages")
    button = section.get_by_role("button", name="Delete my account")
    expect(button).to_be_disabled()

    section.get_by_label("Type erase to confirm").fill("eras")
    expect(button).to_be_disabled()
    section.get_by_label("Type erase to confirm").fill("erase")
    button.click()

    expect(page.get_by_text("Your account was deleted")).to_be_visible()
    with pytest.raises(RestError) as refused:
        wedding.hub.call(wedding.florist, "GET", "/me")
    assert refused.value.status == 401 and "this user was erased" in refused.value.body
    history = {m["body"]: m for m in wedding.history(wedding.planner)}
    assert "My number is 07700 900123" not in history
    assert history["Thanks, noted"]["sender_name"] != "Erased user"
    erased = [m for m in wedding.history(wedding.planner) if m["deleted_at"]]
    assert [m["sender_name"] for m in erased] == ["Erased user"]
    assert page.errors == []
