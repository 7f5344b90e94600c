"""Invitations and removal: the invited organization sees the group only after accepting."""

from __future__ import annotations

import uuid

from hub.storage.audit import audit_rows
from hub.storage.groups import connection_of
from tests.factories import new_member


async def invite(api, owner, group, invitee, role="vendor"):
    return await api.post(
        f"/groups/{group.id}",
        as_=owner,
        json={"organization_id": str(invitee.org_id), "vendor_type": "florist", "role": role},
    )


async def test_inviting_an_organization_records_a_pending_membership(
    api, owner, group, outsider, storage
):
    reply = await invite(api, owner, group, outsider)

    assert reply.status == 201
    assert (reply.json["status"], reply.json["vendor_type"]) == ("invited", "florist")
    membership = await storage.read(connection_of(group.id, outsider.org_id))
    assert membership.status == "invited"


async def test_an_organization_never_seen_before_can_be_invited(api, owner, group, storage):
    unknown_org = uuid.uuid4()

    reply = await api.post(
        f"/groups/{group.id}", as_=owner, json={"organization_id": str(unknown_org)}
    )

    assert reply.status == 201
    assert (await storage.read(connection_of(group.id, unknown_org))).status == "invited"


async def test_an_invited_organization_cannot_see_the_group_before_accepting(
    api, owner, group, outsider
):
    await invite(api, owner, group, outsider)

    assert (await api.get(f"/groups/{group.id}", as_=outsider)).status == 404


async def test_accepting_an_invitation_grants_access(api, owner, group, outsider):
    await invite(api, owner, group, outsider)

    accepted = await api.post(f"/groups/{group.id}/accept", as_=outsider)

    assert (accepted.status, accepted.json["status"]) == (200, "active")
    assert (await api.get(f"/groups/{group.id}", as_=outsider)).status == 200


async def test_declining_an_invitation_keeps_the_group_hidden(api, owner, group, outsider):
    await invite(api, owner, group, outsider)

    declined = await api.post(f"/groups/{group.id}/decline", as_=outsider)

    assert (declined.status, declined.json["status"]) == (200, "declined")
    assert (await api.get(f"/groups/{group.id}", as_=outsider)).status == 404


async def test_a_vendor_role_user_of_the_invited_organization_may_not_accept(
    api, storage, settings, owner, group, outsider
):
    await invite(api, owner, group, outsider)
    colleague = await new_member(storage, settings, org_id=outsider.org_id, role="vendor")

    assert (await api.post(f"/groups/{group.id}/accept", as_=colleague)).status == 403


async def test_accepting_without_an_invitation_is_404(api, group, outsider):
    assert (await api.post(f"/groups/{group.id}/accept", as_=outsider)).status == 404


async def test_inviting_an_active_member_again_is_a_conflict(api, owner, group, vendor):
    assert (await invite(api, owner, group, vendor)).status == 409


async def test_a_vendor_member_may_not_invite(api, group, vendor, outsider):
    assert (await invite(api, vendor, group, outsider)).status == 403


async def test_a_removed_organization_loses_access_at_once(api, owner, group, vendor, thread):
    reply = await api.delete(f"/groups/{group.id}/members/{vendor.org_id}", as_=owner)

    assert (reply.status, reply.json["status"]) == (200, "removed")
    assert (await api.get(f"/groups/{group.id}", as_=vendor)).status == 404
    assert (await api.get(f"/threads/{thread.id}", as_=vendor)).status == 404


async def test_the_owning_organization_cannot_be_removed(api, owner, group):
    reply = await api.delete(f"/groups/{group.id}/members/{owner.org_id}", as_=owner)

    assert reply.status == 409


async def test_removing_an_organization_that_is_not_a_member_is_404(api, owner, group):
    reply = await api.delete(f"/groups/{group.id}/members/{uuid.uuid4()}", as_=owner)

    assert reply.status == 404


async def test_invitation_answers_and_removals_are_audited(
    api, owner, group, outsider, vendor, storage
):
    await invite(api, owner, group, outsider)
    await api.post(f"/groups/{group.id}/accept", as_=outsider)
    await api.delete(f"/groups/{group.id}/members/{vendor.org_id}", as_=owner)

    rows = await storage.read(audit_rows(group_ids=[group.id]))
    assert [(r.action, r.actor_org_id, r.target_id) for r in rows] == [
        ("member.invite", owner.org_id, str(outsider.org_id)),
        ("invitation.accept", outsider.org_id, str(outsider.org_id)),
        ("member.remove", owner.org_id, str(vendor.org_id)),
    ]
