"""`GET /me/organization/users` on both backends: an organization's owners and admins see its
people (names, roles, when last seen, who they may erase), by name with the erased last; other
roles are refused, and other organizations' users never appear."""

from __future__ import annotations

from tests.factories import new_member
from tests.notifications.conftest import Wedding

PATH = "/me/organization/users"


async def people(wedding: Wedding, caller) -> list[dict]:
    reply = await wedding.rest.call("GET", PATH, caller)
    assert reply.status == 200, reply.body
    return reply.json["items"]


async def test_an_owner_sees_everyone_of_their_organization_with_roles(wedding: Wedding):
    owner = await new_member(
        wedding.hub.storage, wedding.settings, org_id=wedding.florist.org_id, name="Olive Owner"
    )
    listed = await people(wedding, owner)
    assert [(p["display_name"], p["role"]) for p in listed] == [
        ("Fern Admin", "admin"),
        ("Flora Green", "vendor"),
        ("Olive Owner", "owner"),
    ]
    assert [p["id"] for p in listed] == [
        str(wedding.florist_admin.user_id),
        str(wedding.florist.user_id),
        str(owner.user_id),
    ]
    assert [p["erasable"] for p in listed] == [True, True, False]  # not themselves
    assert not any(p["erased"] for p in listed)
    assert listed[2]["last_seen_at"] is not None
    assert set(listed[0]) == {"id", "display_name", "role", "last_seen_at", "erased", "erasable"}


async def test_an_admin_sees_the_owner_but_may_not_erase_them(wedding: Wedding):
    await new_member(
        wedding.hub.storage, wedding.settings, org_id=wedding.florist.org_id, name="Olive Owner"
    )
    erasable = {
        p["display_name"]: p["erasable"] for p in await people(wedding, wedding.florist_admin)
    }
    assert erasable == {"Fern Admin": False, "Flora Green": True, "Olive Owner": False}


async def test_a_vendor_is_refused(wedding: Wedding):
    for vendor in (wedding.florist, wedding.dj):
        refused = await wedding.rest.call("GET", PATH, vendor)
        assert refused.status == 403, refused.body
        assert "may not list" in refused.body.decode()


async def test_other_organizations_users_never_appear(wedding: Wedding):
    others = {
        str(m.user_id) for m in (wedding.planner, wedding.dj, wedding.outsider, wedding.florist)
    }
    listed = await people(wedding, wedding.planner)
    assert [p["display_name"] for p in listed] == ["Paula Planner"]
    assert {p["id"] for p in await people(wedding, wedding.outsider)} == {
        str(wedding.outsider.user_id)
    }
    mine = {p["id"] for p in await people(wedding, wedding.florist_admin)}
    assert mine.isdisjoint(others - {str(wedding.florist.user_id)})


async def test_the_erased_are_listed_last_as_gone(wedding: Wedding):
    erased = await wedding.rest.call(
        "POST",
        f"/users/{wedding.florist.user_id}/erase",
        wedding.florist_admin,
        json_body={"confirm": "erase"},
    )
    assert erased.status == 200, erased.body
    await new_member(
        wedding.hub.storage,
        wedding.settings,
        org_id=wedding.florist.org_id,
        name="Zed Vendor",
        role="vendor",
    )
    listed = await people(wedding, wedding.florist_admin)
    assert [(p["display_name"], p["erased"], p["erasable"]) for p in listed] == [
        ("Fern Admin", False, False),
        ("Zed Vendor", False, True),
        ("Erased user", True, False),
    ]
    assert listed[-1]["id"] == str(wedding.florist.user_id)
    assert listed[-1]["last_seen_at"] is None
