"""`GET /invitations` through the real hub: an organization's pending invitations, for the roles
that may answer them, and only while they are pending and their group is not archived."""

from __future__ import annotations

import uuid

import pytest

from hub.storage import groups as group_store
from tests.factories import Member, new_member
from tests.http.blocking import call


@pytest.fixture
async def planner(hub, settings) -> Member:
    """The owner of organization A, which runs the weddings."""
    return await new_member(
        hub.storage, settings, name="Olivia Owner", organization_name="Smith Weddings"
    )


@pytest.fixture
async def florist(hub, settings) -> Member:
    """The owner of organization B, the one invited."""
    return await new_member(hub.storage, settings, name="Bea Bloom", organization_name="Bloom & Co")


async def create_group(hub, owner: Member, name: str, wedding_date: str | None = None) -> str:
    status, group, _ = await call(
        hub, "POST", "/groups", owner, {"name": name, "wedding_date": wedding_date}
    )
    assert status == 201, group
    return group["id"]


async def invite(hub, owner: Member, group_id: str, invitee: Member) -> None:
    status, body, _ = await call(
        hub,
        "POST",
        f"/groups/{group_id}",
        owner,
        {"organization_id": str(invitee.org_id), "vendor_type": "florist", "role": "vendor"},
    )
    assert status == 201, body


async def invitations(hub, member: Member) -> list[dict]:
    status, body, _ = await call(hub, "GET", "/invitations", member)
    assert status == 200, body
    return body["items"]


async def test_the_invited_organizations_owner_sees_the_invitation_with_its_names(
    hub, planner, florist
):
    group_id = await create_group(hub, planner, "Smith & Jones", "2027-06-12")
    await invite(hub, planner, group_id, florist)

    [invitation] = await invitations(hub, florist)

    assert invitation == {
        "group_id": group_id,
        "group_name": "Smith & Jones",
        "wedding_date": "2027-06-12",
        "owner_organization_id": str(planner.org_id),
        "owner_organization_name": "Smith Weddings",
        "vendor_type": "florist",
        "role": "vendor",
        "invited_at": invitation["invited_at"],
        "invited_by_name": "Olivia Owner",
    }


async def test_a_vendor_of_the_invited_organization_may_not_list_invitations(
    hub, settings, planner, florist
):
    await invite(hub, planner, await create_group(hub, planner, "Smith & Jones"), florist)
    assistant = await new_member(hub.storage, settings, org_id=florist.org_id, role="vendor")

    status, body, _ = await call(hub, "GET", "/invitations", assistant)

    assert status == 403
    assert body["error"]["code"] == "forbidden"
    assert "vendor" in body["error"]["message"]


async def test_an_admin_of_the_invited_organization_lists_them_too(hub, settings, planner, florist):
    await invite(hub, planner, await create_group(hub, planner, "Smith & Jones"), florist)
    admin = await new_member(hub.storage, settings, org_id=florist.org_id, role="admin")

    assert [i["group_name"] for i in await invitations(hub, admin)] == ["Smith & Jones"]


async def test_another_organization_sees_nothing_of_the_invitation(hub, settings, planner, florist):
    await invite(hub, planner, await create_group(hub, planner, "Smith & Jones"), florist)
    stranger = await new_member(hub.storage, settings, name="Carl Caterer")

    assert await invitations(hub, stranger) == []
    assert await invitations(hub, planner) == []  # the inviter's own organization is not invited


async def test_invitations_are_newest_first_and_leave_the_list_once_answered(hub, planner, florist):
    first = await create_group(hub, planner, "First wedding")
    second = await create_group(hub, planner, "Second wedding")
    await invite(hub, planner, first, florist)
    await invite(hub, planner, second, florist)
    assert [i["group_id"] for i in await invitations(hub, florist)] == [second, first]

    accepted, _, _ = await call(hub, "POST", f"/groups/{first}/accept", florist)
    assert [i["group_id"] for i in await invitations(hub, florist)] == [second]
    declined, _, _ = await call(hub, "POST", f"/groups/{second}/decline", florist)

    assert (accepted, declined) == (200, 200)
    assert await invitations(hub, florist) == []


async def test_an_invitation_to_an_archived_group_is_not_listed(hub, planner, florist):
    archived = await create_group(hub, planner, "Called off")
    kept = await create_group(hub, planner, "Still on")
    await invite(hub, planner, archived, florist)
    await invite(hub, planner, kept, florist)

    status, _, _ = await call(hub, "DELETE", f"/groups/{archived}", planner)

    assert status == 200
    assert [i["group_id"] for i in await invitations(hub, florist)] == [kept]


async def test_at_most_200_invitations_are_listed(hub, planner, florist):
    def many_invitations(now):
        for _ in range(group_store.PENDING_INVITATIONS_MAX + 1):
            group_id = uuid.uuid4()
            yield from group_store.create_group(
                group_id=group_id,
                owner_organization_id=planner.org_id,
                created_by=planner.user_id,
                name="One of many",
                now=now,
            )
            yield from group_store.invite_organization(
                group_id=group_id,
                organization_id=florist.org_id,
                vendor_type="florist",
                role="vendor",
                invited_by=planner.user_id,
                now=now,
            )

    await hub.storage.write(many_invitations)

    assert len(await invitations(hub, florist)) == group_store.PENDING_INVITATIONS_MAX == 200
