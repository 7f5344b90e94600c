"""GET /audit: owners and admins read their groups' trail; nobody else reads anyone's."""

from __future__ import annotations

from tests.factories import add_member, new_member


async def test_an_owner_reads_the_audit_trail_of_their_groups(api, owner, group):
    await api.put(f"/groups/{group.id}", as_=owner, json={"name": "Renamed"})

    reply = await api.get("/audit", as_=owner)

    assert reply.status == 200
    [row] = reply.json["items"]
    assert (row["action"], row["group_id"], row["actor_user_id"]) == (
        "group.update",
        str(group.id),
        str(owner.user_id),
    )
    assert row["details"]["changes"]["name"]["to"] == "Renamed"


async def test_an_admin_of_the_owning_organization_reads_the_trail(
    api, storage, settings, owner, group
):
    admin = await new_member(storage, settings, org_id=owner.org_id, role="admin")
    await api.put(f"/groups/{group.id}", as_=owner, json={"name": "Renamed"})

    reply = await api.get("/audit", as_=admin)

    assert [r["action"] for r in reply.json["items"]] == ["group.update"]


async def test_a_vendor_may_not_read_the_audit_trail(api, vendor):
    assert (await api.get("/audit", as_=vendor)).status == 403


async def test_a_manager_may_not_read_the_audit_trail(api, manager):
    assert (await api.get("/audit", as_=manager)).status == 403


async def test_an_outsider_sees_no_rows_of_our_groups(api, owner, group, outsider):
    await api.put(f"/groups/{group.id}", as_=owner, json={"name": "Renamed"})

    assert (await api.get("/audit", as_=outsider)).json["items"] == []
    filtered = await api.get("/audit", as_=outsider, query={"group_id": str(group.id)})
    assert filtered.status == 404


async def test_a_member_that_does_not_own_the_group_cannot_read_its_trail(
    api, storage, settings, owner, group
):
    member_owner = await new_member(storage, settings, role="owner")
    await add_member(storage, group, member_owner, invited_by=owner)

    reply = await api.get("/audit", as_=member_owner, query={"group_id": str(group.id)})

    assert reply.status == 403


async def test_the_trail_filters_by_action_and_actor(api, owner, vendor, group, thread):
    await api.post(f"/threads/{thread.id}", as_=vendor, json={"body": "hi"})
    await api.put(f"/groups/{group.id}", as_=owner, json={"name": "Renamed"})

    by_action = await api.get("/audit", as_=owner, query={"action": "message.send"})
    by_actor = await api.get("/audit", as_=owner, query={"actor": str(owner.user_id)})

    assert [r["actor_user_id"] for r in by_action.json["items"]] == [str(vendor.user_id)]
    assert [r["action"] for r in by_actor.json["items"]] == ["group.update"]


async def test_the_trail_filters_by_time_range(api, owner, group):
    await api.put(f"/groups/{group.id}", as_=owner, json={"name": "One"})
    first = (await api.get("/audit", as_=owner)).json["items"][0]
    await api.put(f"/groups/{group.id}", as_=owner, json={"name": "Two"})

    before = await api.get("/audit", as_=owner, query={"until": first["at"]})
    after = await api.get("/audit", as_=owner, query={"since": first["at"]})

    assert before.json["items"] == []
    assert [r["details"]["changes"]["name"]["to"] for r in after.json["items"]] == ["One", "Two"]


async def test_the_trail_pages_with_a_cursor(api, owner, group):
    for name in ("a", "b", "c"):
        await api.put(f"/groups/{group.id}", as_=owner, json={"name": name})

    first = await api.get("/audit", as_=owner, query={"limit": "2"})
    second = await api.get(
        "/audit", as_=owner, query={"limit": "2", "cursor": first.json["next_cursor"]}
    )

    names = [r["details"]["changes"]["name"]["to"] for r in first.json["items"]]
    names += [r["details"]["changes"]["name"]["to"] for r in second.json["items"]]
    assert names == ["a", "b", "c"]
    assert second.json["next_cursor"] is None
