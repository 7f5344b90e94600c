"""Failure behaviour with real sockets: slow consumers, dead peers, shutdown."""

from __future__ import annotations

import contextlib
import socket

import pytest
import trio
from trio_websocket import ConnectionClosed

from hub import client as hub_client
from hub import protocol
from hub.app import run_hub
from hub.storage import open_storage
from tests.factories import new_group, new_member, new_thread
from tests.realtime.conftest import hub_for
from tests.realtime.helpers import raw_socket, receive, send


@pytest.fixture
def ws_overrides(request):
    return getattr(request, "param", {})


class FreezableStream(trio.abc.Stream):
    """A socket stream that can stop reading and writing, like a peer that hangs."""

    def __init__(self, stream: trio.SocketStream, *, receive_buffer: int | None = None) -> None:
        self._stream = stream
        self.frozen = False
        self._closed = trio.Event()
        if receive_buffer is not None:
            stream.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)

    async def _wait_while_frozen(self) -> None:
        if self.frozen:
            await self._closed.wait()
            raise trio.ClosedResourceError

    async def send_all(self, data) -> None:
        await self._wait_while_frozen()
        await self._stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._stream.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes=None):
        await self._wait_while_frozen()
        return await self._stream.receive_some(max_bytes)

    async def aclose(self) -> None:
        self._closed.set()
        await self._stream.aclose()


@pytest.mark.parametrize("ws_overrides", [{"HUB_WS_OUTGOING_QUEUE": "16"}], indirect=True)
async def test_a_slow_consumer_is_cut_off_with_4009_while_others_get_every_message(
    world, alice, bob
):
    streams: list[FreezableStream] = []

    def wrap(stream: trio.SocketStream) -> FreezableStream:
        streams.append(FreezableStream(stream, receive_buffer=None if streams else 4096))
        return streams[-1]

    slow = hub_client.HubClient(
        world.hub.ws_url,
        world.bob.token,
        event_buffer=1,  # the application does not read its events: the socket backs up
        wrap_stream=wrap,  # a small receive window on the first connection: it backs up sooner
    )
    supervisor = world.hub.supervisor
    async with trio.open_nursery() as nursery:
        await nursery.start(slow.run)
        await slow.join(world.thread.id)
        await bob.join(world.thread.id)
        body = "x" * 9_990  # with its number, within the 10,000-character body limit
        sent = 0
        while supervisor.stats.slow_consumers_cut == 0 and sent < 3000:
            sent += 1
            await alice.send(world.thread.id, f"{sent} {body}")
        assert supervisor.stats.slow_consumers_cut >= 1
        # The others got everything, in order.
        assert [m.seq for m in await bob.drain(world.thread.id, sent)] == list(range(1, sent + 1))
        # The slow one recovers by reconnecting with since_seq: nothing lost, nothing twice.
        received = [m.seq for m in await slow.drain(world.thread.id, sent, timeout_s=30)]
        assert received == list(range(1, sent + 1))
        assert slow.connects >= 2
        assert protocol.CLOSE_SLOW_CONSUMER in slow.close_codes
        await slow.aclose()


@pytest.mark.parametrize(
    "ws_overrides",
    [{"HUB_WS_HEARTBEAT_S": "0.2", "HUB_WS_HEARTBEAT_TIMEOUT_S": "0.5"}],
    indirect=True,
)
async def test_a_peer_that_stops_answering_pings_is_dropped_and_its_presence_cleaned(world, alice):
    streams: list[FreezableStream] = []
    async with hub_client.connect(
        world.hub.ws_url,
        world.bob.token,
        wrap_stream=lambda s: streams.append(FreezableStream(s)) or streams[-1],
        backoff_s=60,  # do not come back during the test
    ) as bob:
        await alice.join(world.thread.id)
        await bob.join(world.thread.id)
        await alice.next_event(protocol.UserJoined)
        streams[-1].frozen = True
        left = await alice.next_event(protocol.UserLeft, timeout_s=10)
        assert left.user_id == world.bob.user_id
        assert world.hub.supervisor.stats.heartbeat_timeouts >= 1
        await bob.drop_connection()


async def test_shutdown_closes_sockets_with_1001_and_keeps_every_acknowledged_message(settings):
    shutdown = trio.Event()
    acked: list[int] = []
    async with trio.open_nursery() as nursery:
        running = await nursery.start(run_hub, settings, shutdown)
        storage = running.storage
        alice = await new_member(storage, settings, name="Alice")
        thread = await new_thread(storage, await new_group(storage, alice), alice)
        async with raw_socket(running.ws_url, alice.token) as ws:
            await receive(ws)

            async def pipeline_sends() -> None:
                with contextlib.suppress(ConnectionClosed):  # the server goes away mid-way
                    for i in range(200):
                        message = protocol.SendMessage(
                            thread_id=thread.id, body=f"m{i}", client_msg_id=f"c{i}"
                        )
                        await send(ws, message)

            nursery.start_soon(pipeline_sends)
            try:
                while True:
                    frame = await receive(ws)
                    if isinstance(frame, protocol.Ack) and frame.message is not None:
                        acked.append(frame.message.id)
                        if len(acked) == 20:
                            shutdown.set()
            except ConnectionClosed as exc:
                assert exc.reason.code == protocol.CLOSE_GOING_AWAY
            nursery.cancel_scope.cancel()
    async with open_storage(settings) as storage:
        stored = {m.id for m in await storage.messages(thread.id, limit=1000)}
    assert len(acked) >= 20
    assert set(acked) <= stored


async def test_a_client_outlives_a_hub_restart_and_recovers_what_it_missed(settings):
    async with trio.open_nursery() as nursery:
        async with hub_for(settings) as first:
            storage = first.storage
            alice = await new_member(storage, settings, name="Alice")
            thread = await new_thread(storage, await new_group(storage, alice), alice)
            ws_port = first.ws_url.split(":")[2].split("/")[0]
            client = hub_client.HubClient(first.ws_url, alice.token, backoff_max_s=0.2)
            await nursery.start(client.run)
            await client.join(thread.id)
            await client.send(thread.id, "before the restart")
        # The hub is down and the client keeps trying; start the hub again on the same port.
        async with hub_for(settings, HUB_WS_PORT=ws_port) as second:
            await post_through_router(second, thread, alice, "while you were away")
            messages = await client.drain(thread.id, 2, timeout_s=20)
            assert [m.body for m in messages] == ["before the restart", "while you were away"]
            assert protocol.CLOSE_GOING_AWAY in client.close_codes
            await client.aclose()


async def post_through_router(running, thread, member, body):
    from hub.storage.records import MessageDraft

    await running.supervisor.router.post(
        member.principal,
        MessageDraft(
            thread_id=thread.id,
            sender_user_id=member.user_id,
            sender_org_id=member.org_id,
            client_msg_id=body,
            body=body,
        ),
    )


@pytest.mark.parametrize("ws_overrides", [{"HUB_WS_THREAD_IDLE_S": "0.1"}], indirect=True)
async def test_an_idle_thread_actor_stops_and_starts_again_on_demand(world, alice, bob):
    supervisor = world.hub.supervisor
    await alice.join(world.thread.id)
    await alice.leave(world.thread.id)
    while supervisor.threads.running(world.thread.id) is not None:
        await alice.ping()  # a round trip per check until the actor has stopped itself
    await bob.join(world.thread.id)
    await alice.send(world.thread.id, "after a nap")
    [message] = await bob.drain(world.thread.id, 1)
    assert message.body == "after a nap"
    assert supervisor.stats.actor_starts == 2
