"""Removing an organization from a group ends what its sockets receive from that group at once."""

from __future__ import annotations

import http.client
import json
from urllib.parse import urlsplit

import trio

from hub import protocol
from hub.http.app import BASE_PATH
from tests.realtime.helpers import raw_socket, receive, receive_until, send


def _delete(rest_url: str, path: str, token: str) -> tuple[int, dict]:
    parts = urlsplit(rest_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.request("DELETE", BASE_PATH + path, headers={"Authorization": f"Bearer {token}"})
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        conn.close()


async def test_a_removed_organization_stops_receiving_the_groups_threads(world, alice):
    group_id = (await world.hub.storage.read(_thread(world))).group_id
    async with raw_socket(world.hub.ws_url, world.bob.token) as bob_ws:
        await receive_until(bob_ws, protocol.Ready)
        await send(bob_ws, protocol.JoinThread(thread_id=world.thread.id, ref="j"))
        await receive_until(bob_ws, protocol.Ack)
        await alice.join(world.thread.id)

        status, _ = await trio.to_thread.run_sync(
            _delete,
            world.hub.rest_url,
            f"/groups/{group_id}/members/{world.bob.org_id}",
            world.alice.token,
        )
        assert status == 200

        lost = await receive_until(bob_ws, protocol.Error)
        assert (lost.code, lost.thread_id) == ("not_found", world.thread.id)
        # Later messages of the thread no longer reach the removed organization...
        await alice.send(world.thread.id, "after the removal")
        await send(bob_ws, protocol.Ping(ref="p"))
        frame = await receive(bob_ws)
        while not isinstance(frame, protocol.Pong):
            assert not isinstance(frame, protocol.NewMessage), frame
            frame = await receive(bob_ws)
        # ...and it can neither post there nor join again.
        await send(
            bob_ws,
            protocol.SendMessage(
                thread_id=world.thread.id, body="still here?", client_msg_id="x", ref="s"
            ),
        )
        refused = await receive_until(bob_ws, protocol.Error)
        assert (refused.code, refused.ref) == ("not_found", "s")
        await send(bob_ws, protocol.JoinThread(thread_id=world.thread.id, ref="j2"))
        refused = await receive_until(bob_ws, protocol.Error)
        assert (refused.code, refused.ref) == ("not_found", "j2")


def _thread(world):
    from hub.storage.threads import get_thread

    return get_thread(world.thread.id)
