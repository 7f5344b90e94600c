"""Connecting, authenticating, and every error code over real sockets."""

from __future__ import annotations

import time
import uuid

import pytest
import trio
from trio_websocket import ConnectionRejected

from hub import client as hub_client
from hub import protocol
from hub.auth import issue_token
from hub.storage.sql import execute
from tests.factories import new_group, new_member, new_thread
from tests.realtime.helpers import close_code, raw_socket, receive, send


async def test_a_bearer_header_authenticates_and_the_server_says_ready(world):
    async with raw_socket(world.hub.ws_url, world.alice.token) as ws:
        ready = await receive(ws)
        assert isinstance(ready, protocol.Ready)
        assert ready.user_id == world.alice.user_id and ready.heartbeat_s > 0


async def test_a_first_auth_frame_authenticates_a_browser_style_client(world):
    async with hub_client.connect(world.hub.ws_url, world.alice.token, auth_in_frame=True) as c:
        assert c.user_id == world.alice.user_id
        await c.ping()


async def test_a_bad_token_gets_unauthorized_and_close_4001(world):
    async with raw_socket(world.hub.ws_url, "not-a-token") as ws:
        error = await receive(ws)
        assert error.code == "unauthorized"
        assert await close_code(ws) == protocol.CLOSE_UNAUTHORIZED


@pytest.fixture
def ws_overrides(request):
    return getattr(request, "param", {})


@pytest.mark.parametrize("ws_overrides", [{"HUB_WS_AUTH_TIMEOUT_S": "0.3"}], indirect=True)
async def test_no_token_within_the_auth_timeout_closes_4001(world):
    async with raw_socket(world.hub.ws_url) as ws:
        error = await receive(ws)
        assert error.code == "unauthorized"
        assert await close_code(ws) == protocol.CLOSE_UNAUTHORIZED


@pytest.mark.parametrize(
    "ws_overrides", [{"HUB_WS_ORIGINS": "https://planner.example"}], indirect=True
)
async def test_a_forbidden_origin_is_rejected_in_the_handshake_with_403(world):
    with pytest.raises(ConnectionRejected) as caught:
        async with raw_socket(world.hub.ws_url, world.alice.token, origin="https://evil.example"):
            pass
    assert caught.value.status_code == 403
    async with raw_socket(
        world.hub.ws_url, world.alice.token, origin="https://planner.example"
    ) as ws:
        assert isinstance(await receive(ws), protocol.Ready)


async def test_an_expired_session_gets_unauthorized_and_close_4001(world):
    token = issue_token(
        world.settings,
        user_id=world.alice.user_id,
        org_id=world.alice.org_id,
        role="owner",
        ttl_s=1,
    )
    async with raw_socket(world.hub.ws_url, token) as ws:
        await receive(ws)  # ready
        error = await receive(ws, timeout_s=10)
        assert error.code == "unauthorized"
        assert await close_code(ws) == protocol.CLOSE_UNAUTHORIZED


async def test_a_refreshed_token_keeps_the_socket_and_its_subscriptions(world, bob):
    short = issue_token(
        world.settings,
        user_id=world.alice.user_id,
        org_id=world.alice.org_id,
        role="owner",
        # exp is whole seconds from now rounded down: 2 s leaves at least 1 s to refresh in.
        ttl_s=2,
    )
    async with hub_client.connect(world.hub.ws_url, short) as alice:
        await alice.join(world.thread.id)
        ack = await alice.refresh_token(world.alice.token)
        assert ack.expires_at > time.time() + 60
        await trio.sleep_until(trio.current_time() + 2.5)  # past the first token's expiry
        await bob.send(world.thread.id, "still subscribed")
        [message] = await alice.drain(world.thread.id, 1)
        assert message.body == "still subscribed"
        assert alice.connects == 1


async def test_a_refresh_with_a_bad_token_is_refused_and_the_socket_stays(world, alice):
    with pytest.raises(hub_client.HubClientError) as caught:
        await alice.refresh_token("garbage")
    assert caught.value.code == "unauthorized"
    await alice.ping()


@pytest.mark.parametrize(
    "text",
    [
        "{not json",
        '{"type":"launch_rockets"}',
        '{"type":"join_thread"}',
        '{"type":"mark_read","thread_id":"x","seq":"one"}',
        "x" * (64 * 1024 + 1),
    ],
    ids=["malformed-json", "unknown-type", "missing-field", "wrong-field", "oversized"],
)
async def test_a_bad_frame_gets_invalid_and_the_socket_stays_up(world, alice, text):
    await alice.send_raw(text)
    error = await alice.next_event(protocol.Error)
    assert error.code == "invalid"
    await alice.ping()
    assert alice.connects == 1


async def test_repeated_abuse_closes_the_socket_with_4008(world):
    async with raw_socket(world.hub.ws_url, world.alice.token) as ws:
        await receive(ws)
        for _ in range(25):
            await ws.send_message("{nonsense")
        assert await close_code(ws) == protocol.CLOSE_POLICY


@pytest.mark.parametrize(
    "ws_overrides", [{"HUB_WS_MESSAGE_RATE": "0.01", "HUB_WS_MESSAGE_BURST": "2"}], indirect=True
)
async def test_too_many_messages_get_rate_limited_with_a_retry_after(world, alice):
    await alice.send(world.thread.id, "one")
    await alice.send(world.thread.id, "two")
    with pytest.raises(hub_client.HubClientError) as caught:
        await alice.send(world.thread.id, "three")
    assert caught.value.code == "rate_limited"
    assert caught.value.retry_after_s > 0


@pytest.mark.parametrize("ws_overrides", [{"HUB_WS_MAX_CONNECTIONS_PER_USER": "1"}], indirect=True)
async def test_a_user_over_the_connection_limit_gets_overloaded_and_close_4029(world, alice):
    async with raw_socket(world.hub.ws_url, world.alice.token) as ws:
        error = await receive(ws)
        assert error.code == "overloaded"
        assert await close_code(ws) == protocol.CLOSE_TOO_MANY_CONNECTIONS


@pytest.mark.parametrize(
    "ws_overrides",
    [{"HUB_WS_MAX_CONNECTIONS": "1", "HUB_WS_MAX_CONNECTIONS_PER_USER": "1"}],
    indirect=True,
)
async def test_the_total_connection_limit_rejects_the_handshake_with_503(world, alice):
    with pytest.raises(ConnectionRejected) as caught:
        async with raw_socket(world.hub.ws_url, world.bob.token):
            pass
    assert caught.value.status_code == 503


async def test_joining_an_unknown_thread_is_not_found(world, alice):
    with pytest.raises(hub_client.HubClientError) as caught:
        await alice.join(uuid.uuid4())
    assert caught.value.code == "not_found"


async def test_a_thread_of_another_organizations_group_is_not_found(world, alice):
    storage = world.hub.storage
    stranger = await new_member(storage, world.settings, name="Stranger")
    private = await new_thread(storage, await new_group(storage, stranger), stranger)
    with pytest.raises(hub_client.HubClientError) as caught:
        await alice.join(private.id)
    assert caught.value.code == "not_found"
    with pytest.raises(hub_client.HubClientError) as caught:
        await alice.send(private.id, "let me in")
    assert caught.value.code == "not_found"


async def test_posting_in_an_archived_thread_is_forbidden(world, alice):
    def archive():
        yield execute(
            "UPDATE messaging_threads SET status = 'archived' WHERE id = $1", world.thread.id
        )

    await world.hub.storage.write(lambda now: archive())
    with pytest.raises(hub_client.HubClientError) as caught:
        await alice.send(world.thread.id, "too late")
    assert caught.value.code == "forbidden"


async def test_an_unexpected_failure_is_reported_as_internal_and_the_socket_stays(
    world, alice, monkeypatch
):
    from hub.actors import session

    def broken(thread_id, since_seq):
        raise RuntimeError("bug")

    monkeypatch.setattr(session, "history_kept_since", broken)
    with pytest.raises(hub_client.HubClientError) as caught:
        await alice.join(world.thread.id, since_seq=0)
    assert caught.value.code == "internal"
    monkeypatch.undo()
    await alice.ping()


async def test_a_frame_sent_before_anything_else_is_answered_in_order(world):
    async with raw_socket(world.hub.ws_url, world.alice.token) as ws:
        await receive(ws)
        await send(ws, protocol.Ping(ref="a"))
        await send(ws, protocol.JoinThread(thread_id=world.thread.id, ref="b"))
        assert (await receive(ws)).ref == "a"
        ack = await receive(ws)
        assert (ack.ref, ack.last_seq, ack.thread_id) == ("b", 0, world.thread.id)


async def test_a_session_that_fails_unexpectedly_closes_alone_and_the_server_stays_up(
    world, bob, monkeypatch
):
    from hub.actors.session import Session

    async def broken_worker(self):
        raise RuntimeError("bug")

    monkeypatch.setattr(Session, "_worker", broken_worker)
    async with raw_socket(world.hub.ws_url, world.alice.token) as ws:
        assert await close_code(ws) == protocol.CLOSE_INTERNAL
    monkeypatch.undo()
    await bob.ping()
    async with hub_client.connect(world.hub.ws_url, world.alice.token) as alice:
        await alice.ping()


@pytest.mark.parametrize(
    "ws_overrides",
    [{"HUB_WS_HEARTBEAT_S": "0.2", "HUB_WS_HEARTBEAT_TIMEOUT_S": "0.5"}],
    indirect=True,
)
async def test_a_session_whose_heartbeat_fails_closes_alone_and_the_others_keep_theirs(
    world, bob, monkeypatch
):
    from hub.actors.session import Session

    healthy_ping = Session.ping

    def ping_broken_for_alice(self):
        if self.principal.user_id == world.alice.user_id:
            raise RuntimeError("bug")
        healthy_ping(self)

    monkeypatch.setattr(Session, "ping", ping_broken_for_alice)
    async with raw_socket(world.hub.ws_url, world.alice.token) as ws:
        assert await close_code(ws) == protocol.CLOSE_INTERNAL
    await trio.sleep(1.5)  # several heartbeats for bob, who answers them
    await bob.ping()
    assert bob.connects == 1
    assert world.hub.supervisor.stats.heartbeat_timeouts == 0


async def test_the_timers_of_closed_sockets_are_gone(world, bob):
    supervisor = world.hub.supervisor
    async with hub_client.connect(world.hub.ws_url, world.alice.token, backoff_s=60) as alice:
        await alice.ping()
        async with raw_socket(world.hub.ws_url, world.alice.token) as ws:
            await receive(ws)
            assert len(supervisor.timers) == 3
        # The raw socket closed with a close handshake; alice's TCP connection is cut without.
        await alice.drop_connection()
        with trio.fail_after(10):
            # The hub has no event for "a session ended" (nothing else needs one): poll.
            while supervisor.connections > 1:  # noqa: ASYNC110
                await trio.sleep(0.01)
    assert len(supervisor.timers) == 1  # bob's
    await bob.ping()
