"""Groups over REST: create, list with stats and filters, read, update, archive, bulk update."""

from __future__ import annotations

import uuid

from hub.storage.audit import audit_rows
from hub.storage.groups import connection_of, get_client, get_group
from hub.storage.receipts import mark_read
from hub.storage.threads import update_thread
from tests.factories import add_member, new_group, new_member, new_thread, send


async def test_creating_a_group_makes_the_callers_organization_its_owner(api, owner, storage):
    reply = await api.post(
        "/groups",
        as_=owner,
        json={"name": "Patel & Kim", "wedding_date": "2027-05-01", "settings": {"tz": "UTC"}},
    )

    assert reply.status == 201
    group_id = uuid.UUID(reply.json["id"])
    assert reply.headers["Location"] == f"/api/vendor-connections/groups/{group_id}"
    membership = await storage.read(connection_of(group_id, owner.org_id))
    assert (membership.role, membership.status) == ("owner", "active")
    stored = await storage.read(get_group(group_id))
    assert (stored.name, str(stored.wedding_date), stored.settings) == (
        "Patel & Kim",
        "2027-05-01",
        {"tz": "UTC"},
    )


async def test_creating_a_group_with_a_client_stores_the_client_for_the_organization(
    api, owner, storage
):
    reply = await api.post(
        "/groups", as_=owner, json={"name": "Wed", "client": {"partner_one_name": "Sam"}}
    )

    client = await storage.read(get_client(uuid.UUID(reply.json["client_id"])))
    assert (client.partner_one_name, client.organization_id) == ("Sam", owner.org_id)


async def test_a_vendor_may_not_create_a_group(api, storage, settings):
    vendor = await new_member(storage, settings, role="vendor")

    reply = await api.post("/groups", as_=vendor, json={"name": "Mine"})

    assert reply.status == 403


async def test_creating_a_group_is_audited_with_ip_user_agent_and_fields(api, owner, storage):
    reply = await api.post(
        "/groups", as_=owner, json={"name": "Audited"}, headers={"User-Agent": "planner/2.1"}
    )

    group_id = uuid.UUID(reply.json["id"])
    [row] = await storage.read(audit_rows(group_ids=[group_id]))
    assert (row.action, row.target_type, row.target_id) == ("group.create", "group", str(group_id))
    assert (row.actor_user_id, row.actor_org_id) == (owner.user_id, owner.org_id)
    assert row.user_agent == "planner/2.1"
    assert row.ip
    assert row.details["fields"]["name"] == "Audited"


async def test_the_list_holds_only_the_callers_groups(api, storage, owner, outsider, group):
    await new_group(storage, outsider, name="Not yours")

    reply = await api.get("/groups", as_=owner)

    assert reply.status == 200
    assert [g["id"] for g in reply.json["items"]] == [str(group.id)]


async def test_the_list_carries_member_thread_message_and_unread_counts(
    api, storage, owner, vendor, group, thread
):
    for body in ("one", "two", "three"):
        await send(storage, thread, vendor, body)
    await storage.write(
        lambda now: mark_read(thread_id=thread.id, user_id=owner.user_id, seq=1, now=now)
    )

    [item] = (await api.get("/groups", as_=owner)).json["items"]

    assert item["stats"]["member_count"] == 2
    assert item["stats"]["thread_count"] == 1
    assert item["stats"]["message_count"] == 3
    assert item["stats"]["unread_count"] == 2
    assert item["stats"]["last_activity_at"] >= item["updated_at"]


async def test_own_messages_are_not_unread(api, storage, owner, group, thread):
    await send(storage, thread, owner, "note to self")

    [item] = (await api.get("/groups", as_=owner)).json["items"]

    assert item["stats"]["unread_count"] == 0


async def test_the_list_filters_by_wedding_date_range(api, storage, owner):
    for name, day in (("May", "2027-05-01"), ("June", "2027-06-15"), ("July", "2027-07-30")):
        await api.post("/groups", as_=owner, json={"name": name, "wedding_date": day})

    reply = await api.get(
        "/groups", as_=owner, query={"wedding_from": "2027-06-01", "wedding_to": "2027-06-30"}
    )

    assert [g["name"] for g in reply.json["items"]] == ["June"]


async def test_archived_groups_are_listed_only_when_asked_for(api, owner, group):
    await api.delete(f"/groups/{group.id}", as_=owner)

    active = await api.get("/groups", as_=owner)
    archived = await api.get("/groups", as_=owner, query={"status": "archived"})

    assert active.json["items"] == []
    assert [g["id"] for g in archived.json["items"]] == [str(group.id)]


async def test_the_list_pages_with_an_opaque_cursor_without_repeats(api, storage, owner):
    for i in range(5):
        await new_group(storage, owner, name=f"G{i}")
    seen, cursor = [], None

    while True:
        query = {"limit": "2"} | ({"cursor": cursor} if cursor else {})
        page = (await api.get("/groups", as_=owner, query=query)).json
        seen += [g["name"] for g in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert seen == ["G4", "G3", "G2", "G1", "G0"]


async def test_detail_shows_members_with_vendor_types_and_roles(api, owner, vendor, group):
    reply = await api.get(f"/groups/{group.id}", as_=vendor)

    assert reply.status == 200
    members = {m["organization_id"]: m for m in reply.json["members"]}
    assert members[str(owner.org_id)]["role"] == "owner"
    assert members[str(vendor.org_id)]["vendor_type"] == "photographer"
    assert members[str(vendor.org_id)]["status"] == "active"


async def test_detail_shows_recent_activity_and_open_urgent_threads(
    api, storage, owner, vendor, group, thread
):
    urgent = await new_thread(storage, group, owner, title="Rain plan")
    await storage.write(lambda now: update_thread(urgent.id, {"priority": "urgent"}, now))
    await send(storage, thread, vendor, "hello")
    await send(storage, thread, vendor, "again")
    await send(storage, urgent, owner, "tent?")

    activity = (await api.get(f"/groups/{group.id}", as_=owner)).json["activity"]

    assert (activity["messages_24h"], activity["messages_7d"]) == (3, 3)
    assert (activity["open_threads"], activity["urgent_threads"]) == (2, 1)
    top = activity["most_active_members"][0]
    assert (top["user_id"], top["message_count"]) == (str(vendor.user_id), 2)


async def test_a_partial_update_changes_only_the_given_fields(api, owner, group, storage):
    reply = await api.put(f"/groups/{group.id}", as_=owner, json={"description": "Lakeside"})

    assert reply.status == 200
    stored = await storage.read(get_group(group.id))
    assert (stored.name, stored.description) == (group.name, "Lakeside")


async def test_an_update_is_audited_with_old_and_new_values(api, owner, group, storage):
    await api.put(f"/groups/{group.id}", as_=owner, json={"name": "Renamed"})

    [row] = await storage.read(audit_rows(group_ids=[group.id], action="group.update"))
    assert row.details["changes"] == {"name": {"from": group.name, "to": "Renamed"}}


async def test_a_vendor_member_may_read_but_not_update_the_group(api, vendor, group):
    assert (await api.get(f"/groups/{group.id}", as_=vendor)).status == 200

    reply = await api.put(f"/groups/{group.id}", as_=vendor, json={"name": "Mine now"})

    assert reply.status == 403


async def test_a_manager_of_the_owning_organization_may_not_update_the_group(api, manager, group):
    reply = await api.put(f"/groups/{group.id}", as_=manager, json={"name": "Mine now"})

    assert reply.status == 403


async def test_archiving_makes_the_group_read_only(api, owner, group, storage):
    archived = await api.delete(f"/groups/{group.id}", as_=owner)
    update = await api.put(f"/groups/{group.id}", as_=owner, json={"name": "Too late"})

    assert (archived.status, archived.json["status"]) == (200, "archived")
    assert update.status == 409
    assert (await storage.read(get_group(group.id))).archived_at is not None


async def test_archiving_twice_is_a_conflict(api, owner, group):
    await api.delete(f"/groups/{group.id}", as_=owner)

    assert (await api.delete(f"/groups/{group.id}", as_=owner)).status == 409


async def test_bulk_update_reports_each_item_and_applies_the_allowed_ones(
    api, storage, settings, owner, group, outsider
):
    theirs = await new_group(storage, outsider, name="Theirs")
    shared = await new_group(storage, outsider, name="Shared")
    await add_member(storage, shared, owner, invited_by=outsider)

    reply = await api.put(
        "/groups",
        as_=owner,
        json={
            "items": [
                {"id": str(group.id), "name": "Ours, renamed"},
                {"id": str(theirs.id), "name": "Stolen"},
                {"id": str(shared.id), "name": "Hijacked"},
            ]
        },
    )

    assert reply.status == 200
    assert (reply.json["succeeded"], reply.json["failed"]) == (1, 2)
    assert [(r["ok"], r["status"]) for r in reply.json["results"]] == [
        (True, 200),
        (False, 404),
        (False, 403),
    ]
    assert reply.json["results"][0]["group"]["name"] == "Ours, renamed"
    assert (await storage.read(get_group(theirs.id))).name == "Theirs"
    assert (await storage.read(get_group(shared.id))).name == "Shared"


async def test_bulk_update_with_an_invalid_item_rejects_the_whole_request(api, owner, group):
    reply = await api.put("/groups", as_=owner, json={"items": [{"id": str(group.id), "name": ""}]})

    assert reply.status == 422
    assert reply.error["details"][0]["field"] == "items[0].name"
