"""A session actor over in-memory streams (trio.testing) with the autojump clock: heartbeats and
token expiry take their real 10-30 s of virtual time in milliseconds, with no sockets."""

from __future__ import annotations

import time
import uuid

import trio
import trio.testing
from trio_websocket import wrap_client_stream, wrap_server_stream

from hub import protocol
from hub.actors.session import Session
from hub.actors.supervisor import HubStats
from hub.auth import Principal
from tests.conftest import make_settings


class FakeSupervisor:
    """Just what a session needs when it never touches a thread or the database."""

    def __init__(self, settings) -> None:
        self.settings = settings
        self.stats = HubStats()

    async def leave(self, session_id, thread_id, ref=None) -> bool:
        return False


async def session_over_memory(nursery, principal, tmp_path, **overrides):
    settings = make_settings(f"sqlite:///{tmp_path}/unused.db", tmp_path / "var", **overrides)
    server_stream, client_stream = trio.testing.memory_stream_pair()
    client_ready = trio.Event()
    client_box: list = []

    async def client_side(*, task_status=trio.TASK_STATUS_IGNORED):
        async with trio.open_nursery() as client_nursery:
            ws = await wrap_client_stream(client_nursery, client_stream, "hub", "/ws")
            client_box.append((ws, client_nursery))
            client_ready.set()
            task_status.started()

    request_box: list = []

    async def server_side(*, task_status=trio.TASK_STATUS_IGNORED):
        async with trio.open_nursery() as server_nursery:
            request = await wrap_server_stream(server_nursery, server_stream)
            ws = await request.accept()
            request_box.append(ws)
            task_status.started()
            await trio.sleep_forever()

    nursery.start_soon(client_side)
    await nursery.start(server_side)
    await client_ready.wait()
    supervisor = FakeSupervisor(settings)
    session = Session(request_box[0], principal, supervisor, verifier=None)  # type: ignore[arg-type]
    return session, supervisor, client_box[0]


def alice(expires_in_s: float = 3600) -> Principal:
    return Principal(uuid.uuid4(), uuid.uuid4(), "owner", "Alice", time.time() + expires_in_s)


async def test_a_peer_that_stops_answering_pings_is_closed_with_4000(autojump_clock, tmp_path):
    async with trio.open_nursery() as nursery:
        session, supervisor, (client_ws, client_nursery) = await session_over_memory(
            nursery, alice(), tmp_path
        )
        ended = trio.Event()

        async def run_session() -> None:
            await session.run()
            ended.set()

        nursery.start_soon(run_session)
        assert isinstance(protocol.decode_server(await client_ws.get_message()), protocol.Ready)
        client_nursery.cancel_scope.cancel()  # the peer hangs: nobody reads, nobody pongs
        started = trio.current_time()
        await ended.wait()
        assert session.close_code == protocol.CLOSE_HEARTBEAT_TIMEOUT
        assert supervisor.stats.heartbeat_timeouts == 1
        # First ping after 20 s, no pong within 10 s.
        assert trio.current_time() - started >= 30
        nursery.cancel_scope.cancel()


async def test_a_peer_that_answers_pings_is_kept(autojump_clock, tmp_path):
    async with trio.open_nursery() as nursery:
        session, supervisor, (client_ws, _) = await session_over_memory(nursery, alice(), tmp_path)

        async def read_forever() -> None:
            while True:
                await client_ws.get_message()

        nursery.start_soon(read_forever)
        with trio.move_on_after(300):  # five minutes of virtual time, fifteen heartbeats
            await session.run()
        assert session.close_code is None
        assert supervisor.stats.heartbeat_timeouts == 0
        nursery.cancel_scope.cancel()
