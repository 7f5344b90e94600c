"""Sending messages over REST: stored, idempotent, validated, routed like socket messages."""

from __future__ import annotations

from hub import client as hub_client
from hub.auth import TokenVerifier
from hub.http.app import create_app
from hub.messaging import DirectRouter
from hub.storage.audit import audit_rows
from hub.storage.messages import count_messages
from tests.factories import add_member, new_group, new_member, new_thread, send
from tests.http.blocking import call
from tests.http.conftest import Api


async def test_a_sent_message_is_stored_and_acknowledged_with_its_seq(api, vendor, thread, storage):
    reply = await api.post(
        f"/threads/{thread.id}", as_=vendor, json={"body": "Arriving 2pm", "client_msg_id": "c1"}
    )

    assert reply.status == 201
    assert (reply.json["seq"], reply.json["duplicate"]) == (1, False)
    [stored] = await storage.messages(thread.id)
    assert (stored.id, stored.body, stored.sender_user_id) == (
        reply.json["id"],
        "Arriving 2pm",
        vendor.user_id,
    )


async def test_a_repeated_client_msg_id_returns_the_original_with_200(api, vendor, thread, storage):
    first = await api.post(
        f"/threads/{thread.id}", as_=vendor, json={"body": "once", "client_msg_id": "retry-me"}
    )
    again = await api.post(
        f"/threads/{thread.id}", as_=vendor, json={"body": "once", "client_msg_id": "retry-me"}
    )

    assert (first.status, again.status) == (201, 200)
    assert (again.json["id"], again.json["seq"], again.json["duplicate"]) == (
        first.json["id"],
        first.json["seq"],
        True,
    )
    assert await storage.read(count_messages(thread.id)) == 1
    # The repeat stored nothing, so it left no second audit row either.
    rows = await storage.read(audit_rows(action="message.send"))
    assert [r.target_id for r in rows] == ["retry-me"]


async def test_a_location_message_stores_its_coordinates(api, owner, thread, storage):
    reply = await api.post(
        f"/threads/{thread.id}",
        as_=owner,
        json={"kind": "location", "latitude": 51.5, "longitude": -0.12, "body": "Gate B"},
    )

    assert reply.status == 201
    [stored] = await storage.messages(thread.id)
    assert (stored.kind, stored.metadata) == ("location", {"latitude": 51.5, "longitude": -0.12})


async def test_a_location_without_longitude_is_422_naming_it(api, owner, thread):
    reply = await api.post(
        f"/threads/{thread.id}", as_=owner, json={"kind": "location", "latitude": 1.0}
    )

    assert reply.status == 422
    assert reply.error["details"][0]["field"] == "longitude"


async def test_a_latitude_out_of_range_is_422(api, owner, thread):
    reply = await api.post(
        f"/threads/{thread.id}",
        as_=owner,
        json={"kind": "location", "latitude": 91, "longitude": 0},
    )

    assert reply.status == 422
    assert reply.error["details"][0]["field"] == "latitude"


async def test_an_empty_text_message_is_422(api, owner, thread):
    reply = await api.post(f"/threads/{thread.id}", as_=owner, json={"body": "   "})

    assert reply.status == 422
    assert reply.error["details"][0]["field"] == "body"


async def test_a_reply_to_a_message_of_another_thread_is_400(api, storage, owner, group, thread):
    elsewhere = await new_thread(storage, group, owner, title="elsewhere")
    foreign = await send(storage, elsewhere, owner, "not here")

    reply = await api.post(
        f"/threads/{thread.id}", as_=owner, json={"body": "re", "reply_to": foreign.id}
    )

    assert reply.status == 400
    assert await storage.read(count_messages(thread.id)) == 0


async def test_a_sent_message_is_audited_without_its_body(api, vendor, group, thread, storage):
    await api.post(
        f"/threads/{thread.id}", as_=vendor, json={"body": "secret plan", "client_msg_id": "a1"}
    )

    [row] = await storage.read(audit_rows(group_ids=[group.id], action="message.send"))
    assert (row.actor_user_id, row.target_id) == (vendor.user_id, "a1")
    assert "secret plan" not in str(row.details)


class RecordingRouter(DirectRouter):
    def __init__(self, storage):
        super().__init__(storage)
        self.posted = []

    async def post(self, principal, message, *, audit=(), timing=None):
        self.posted.append((principal.user_id, message.body))
        return await super().post(principal, message, audit=audit, timing=timing)


async def test_messages_are_posted_through_the_configured_router(settings, storage, vendor, thread):
    router = RecordingRouter(storage)
    api = Api(create_app(settings, storage, TokenVerifier(settings), router=router))

    await api.post(f"/threads/{thread.id}", as_=vendor, json={"body": "via router"})

    assert router.posted == [(vendor.user_id, "via router")]


async def test_a_first_message_on_thread_creation_goes_through_the_router(settings, storage, owner):
    router = RecordingRouter(storage)
    api = Api(create_app(settings, storage, TokenVerifier(settings), router=router))
    group = await new_group(storage, owner)

    await api.post(
        "/threads",
        as_=owner,
        json={"group_id": str(group.id), "title": "t", "first_message": {"body": "first"}},
    )

    assert router.posted == [(owner.user_id, "first")]


async def test_a_send_decides_access_in_its_write_without_a_read_of_its_own(
    api, vendor, thread, storage, monkeypatch
):
    """The decision is taken in the transaction that stores the message (so nothing changes
    between the check and the write), not by a read beforehand."""
    await api.get(f"/threads/{thread.id}", as_=vendor)  # the caller's identity is written first
    reads = []
    read = storage.read

    async def counting_read(op, **kwargs):
        reads.append(op)
        return await read(op, **kwargs)

    monkeypatch.setattr(storage, "read", counting_read)

    reply = await api.post(f"/threads/{thread.id}", as_=vendor, json={"body": "Arriving 2pm"})

    assert reply.status == 201
    assert reads == []
    [entry] = await storage.read(audit_rows(action="message.send"))
    assert entry.group_id == thread.group_id


async def test_a_client_msg_id_is_idempotent_per_thread_over_the_wire(hub, settings):
    """Through the served port: the id reused in another thread is a new message there, which
    subscribers get; the repeat in that thread is the original, 200, and delivered to nobody."""
    owner = await new_member(hub.storage, settings, name="Olivia Owner")
    vendor = await new_member(hub.storage, settings, role="vendor")
    group = await new_group(hub.storage, owner)
    await add_member(hub.storage, group, vendor, invited_by=owner)
    first = await new_thread(hub.storage, group, owner, title="Ceremony")
    other = await new_thread(hub.storage, group, owner, title="Catering")
    body = {"body": "Arriving 2pm", "client_msg_id": "c1"}
    async with hub_client.connect(hub.ws_url, owner.token) as watcher:
        for thread in (first, other):
            await watcher.join(thread.id)

        in_first = await call(hub, "POST", f"/threads/{first.id}", vendor, body)
        [seen_in_first] = await watcher.drain(first.id, 1)
        in_other = await call(hub, "POST", f"/threads/{other.id}", vendor, body)
        again = await call(hub, "POST", f"/threads/{other.id}", vendor, body)
        _, marker, _ = await call(hub, "POST", f"/threads/{other.id}", vendor, {"body": "marker"})
        seen_in_other = await watcher.drain(other.id, marker["seq"])

    assert [reply[0] for reply in (in_first, in_other, again)] == [201, 201, 200]
    assert in_other[1]["id"] != in_first[1]["id"]
    assert (in_other[1]["duplicate"], again[1]["duplicate"]) == (False, True)
    assert again[1]["id"] == in_other[1]["id"]
    assert seen_in_first.body == "Arriving 2pm"
    assert [m.body for m in seen_in_other] == ["Arriving 2pm", "marker"]
    assert [m.body for m in await hub.storage.messages(other.id)] == ["Arriving 2pm", "marker"]
