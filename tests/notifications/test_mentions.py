"""Mentions: the rules of `find_mentions`, and mentions resolved when a message is stored over
either door, kept with it, carried by `new_message` and turned into notifications."""

from __future__ import annotations

import uuid

from hub import client as hub_client
from hub import protocol
from hub.notifications.mentions import MENTIONS_MAX, Named, find_mentions
from tests.notifications.conftest import Wedding

MARTA = Named(uuid.uuid4(), "Marta", uuid.uuid4())
MARTA_LOPEZ = Named(uuid.uuid4(), "Marta Lopez", uuid.uuid4())
BLOOM = Named(uuid.uuid4(), "Bloom & Co")
NOAH = Named(uuid.uuid4(), "Noah", uuid.uuid4())


def names(found):
    users, orgs = found
    return [u.name for u in users], [o.name for o in orgs]


def test_the_longest_member_name_after_an_at_sign_is_the_mention():
    users = [MARTA, MARTA_LOPEZ, NOAH]
    assert names(find_mentions("@marta lopez, the arch?", users, [BLOOM])) == (["Marta Lopez"], [])
    assert names(find_mentions("@Marta: the arch?", users, [BLOOM])) == (["Marta"], [])
    assert names(find_mentions("ask @BLOOM & CO and @Noah", users, [BLOOM])) == (
        ["Noah"],
        ["Bloom & Co"],
    )


def test_what_is_not_a_mention():
    users = [MARTA, NOAH]
    # An e-mail address, a longer word, a bare name, an at sign alone.
    for body in ("mail noah@example.com", "@Martaz is new", "Marta and Noah", "@ @", "@"):
        assert find_mentions(body, users, [BLOOM]) == ([], []), body


def test_each_is_mentioned_once_and_a_tie_tells_both():
    twin = Named(uuid.uuid4(), "Marta", uuid.uuid4())
    org = Named(uuid.uuid4(), "Marta")
    users, orgs = find_mentions("@Marta @marta @MARTA", [MARTA, twin], [org])
    assert {u.id for u in users} == {MARTA.id, twin.id}
    assert [o.id for o in orgs] == [org.id]


def test_a_body_of_at_signs_is_bounded():
    many = [Named(uuid.uuid4(), f"user{i}", uuid.uuid4()) for i in range(MENTIONS_MAX + 20)]
    body = " ".join(f"@user{i}" for i in range(MENTIONS_MAX + 20))
    users, _ = find_mentions(body, many, [])
    assert len(users) == MENTIONS_MAX


async def test_mentions_over_rest_are_kept_and_notify(wedding: Wedding):
    reply = await wedding.post(
        wedding.planner, "@Flora Green can you confirm the arch? cc @Beat Box, ping paula@x.com"
    )
    assert reply.status == 201, reply.body
    page = await wedding.rest.call("GET", f"/threads/{wedding.thread.id}", wedding.dj)
    [message] = page.json["messages"]
    mentions = message["metadata"]["mentions"]
    assert mentions["users"] == [
        {
            "id": str(wedding.florist.user_id),
            "name": "Flora Green",
            "org_id": str(wedding.florist.org_id),
        }
    ]
    assert mentions["orgs"] == [{"id": str(wedding.dj.org_id), "name": "Beat Box"}]
    assert message["requires_ack"] is False

    [florist] = await wedding.notifications_of(wedding.florist)
    [dj] = await wedding.notifications_of(wedding.dj)
    assert (florist["reason"], dj["reason"]) == ("mention", "org_mention")
    assert florist["urgent"] is False
    assert await wedding.notifications_of(wedding.florist_admin) == []
    assert await wedding.notifications_of(wedding.planner) == []
    # Nothing asked for acknowledgement, so nobody owes one.
    assert await wedding.rows("SELECT * FROM ack_requests") == []


async def test_mentions_over_the_socket_travel_in_new_message(wedding: Wedding):
    async with (
        hub_client.connect(wedding.hub.ws_url, wedding.dj.token) as dj,
        hub_client.connect(wedding.hub.ws_url, wedding.planner.token) as planner,
    ):
        await planner.join(wedding.thread.id)
        sent = await dj.send(wedding.thread.id, "@Paula Planner where do I park?")
        event = await planner.next_event(protocol.NewMessage)
        assert event.message.seq == sent.message.seq
        assert event.message.metadata["mentions"]["users"][0]["id"] == str(wedding.planner.user_id)
    [note] = await wedding.notifications_of(wedding.planner)
    assert note["reason"] == "mention"


async def test_a_mention_that_also_asks_targets_the_named_user(wedding: Wedding):
    """A change naming Flora asks her shop, but only Flora is told at first; the DJ's
    organization, named by nobody, is told as a whole."""
    reply = await wedding.post(
        wedding.planner, "@Flora Green peonies are out: roses?", kind="change"
    )
    assert reply.status == 201
    [note] = await wedding.notifications_of(wedding.florist)
    assert note["reason"] == "ack_request"
    assert await wedding.notifications_of(wedding.florist_admin) == []
    assert [n["reason"] for n in await wedding.notifications_of(wedding.dj)] == ["ack_request"]
    targets = {
        r["organization_id"]: r["targets"]
        for r in await wedding.rows("SELECT organization_id, targets FROM ack_requests")
    }
    assert targets == {
        wedding.florist.org_id: [str(wedding.florist.user_id)],
        wedding.dj.org_id: [],
    }


async def test_a_client_cannot_set_mentions_itself(wedding: Wedding):
    reply = await wedding.post(
        wedding.florist, "hello", metadata={"mentions": {"users": [str(wedding.dj.user_id)]}}
    )
    assert reply.status == 422
    assert "metadata.mentions" in reply.body.decode()
    assert await wedding.notifications_of(wedding.dj) == []


async def test_outsiders_are_not_mentionable(wedding: Wedding):
    reply = await wedding.post(wedding.planner, "@Eve Outsider is not invited")
    assert reply.status == 201
    page = await wedding.rest.call("GET", f"/threads/{wedding.thread.id}", wedding.planner)
    assert "mentions" not in page.json["messages"][0]["metadata"]
    assert await wedding.notifications_of(wedding.outsider) == []
