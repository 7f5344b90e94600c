"""Notifications and acknowledgements across nodes (in-process nodes on one PostgreSQL, on an
in-memory bus and on Redis): a mention posted on one node reaches the user's socket on another,
a confirmation given on one node reaches the thread's subscribers on the other, and reading
on one node reaches the user's sockets on the other."""

from __future__ import annotations

import pytest
import trio

from hub import client as hub_client
from hub import protocol
from tests.attachments.conftest import Rest
from tests.cluster.conftest import cluster, joined
from tests.cluster.test_in_process import brokers, kind, redis_url, until_connected, world

pytestmark = pytest.mark.postgres
__all__ = ["kind", "redis_url"]  # fixtures, used by name


async def test_a_change_notifies_and_its_confirmation_crosses_nodes(settings, kind, redis_url):
    async with cluster(settings, brokers(kind, redis_url)) as (a, b):
        await until_connected((a, b))
        alice, bob, _, thread = await world(a, settings)
        async with (
            joined((a, alice), thread=thread) as (on_a,),
            hub_client.connect(b.ws_url, bob.token) as on_b,
        ):
            reply = await Rest(a).call(  # type: ignore[arg-type]  (anything with a rest_url)
                "POST",
                f"/threads/{thread.id}",
                alice,
                json_body={"kind": "change", "body": "@Bob Photographer portraits at 4 now"},
            )
            assert reply.status == 201
            seq = reply.json["seq"]
            notified = await on_b.next_event(protocol.Notification)
            assert (notified.reason, notified.seq) == ("ack_request", seq)
            assert notified.group_name is not None

            confirmed = await Rest(b).call(  # type: ignore[arg-type]
                "POST", f"/threads/{thread.id}/messages/{seq}/ack", bob
            )
            assert confirmed.status == 201
            event = await on_a.next_event(protocol.MessageAcknowledged)

            # Bob reads his notifications on node A; his socket on node B hears of it.
            read = await Rest(a).call(  # type: ignore[arg-type]
                "POST", "/me/notifications/read", bob, json_body={"thread_id": str(thread.id)}
            )
            assert read.json == {"marked": 1, "unread_count": 0}
            cleared = await on_b.next_event(protocol.NotificationsRead)
    assert (event.seq, event.org_id, event.user_id) == (seq, bob.org_id, bob.user_id)
    assert event.user_name == "Bob Photographer"
    assert (cleared.ids, cleared.unread_count) == ([notified.id], 0)


async def test_a_user_erased_on_one_node_is_refused_on_the_other_at_once(settings, kind, redis_url):
    async with cluster(settings, brokers(kind, redis_url)) as (a, b):
        await until_connected((a, b))
        _, bob, _, thread = await world(a, settings)
        # Bob is known on node B (his identity remembered there), with a socket open.
        seen = await Rest(b).call("GET", "/me", bob)  # type: ignore[arg-type]
        assert seen.status == 200
        closed: list[int | None] = []
        try:
            async with hub_client.connect(b.ws_url, bob.token) as on_b:
                await on_b.join(thread.id)
                erased = await Rest(a).call(  # type: ignore[arg-type]
                    "POST", "/me/erase", bob, json_body={"confirm": "erase"}
                )
                assert erased.status == 200, erased.body
                with trio.fail_after(10):
                    while not on_b.close_codes:  # noqa: ASYNC110 (the client's own record)
                        await trio.sleep(0.02)
        except BaseException:  # the client ends: its socket was closed as unauthorized
            if not on_b.close_codes:
                raise
        closed = list(on_b.close_codes)
        assert closed == [protocol.CLOSE_UNAUTHORIZED]
        refused = await Rest(b).call("GET", "/me", bob)  # type: ignore[arg-type]
        assert refused.status == 401
