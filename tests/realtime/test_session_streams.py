"""A session actor over in-memory streams (trio.testing) with the autojump clock: heartbeats and
token expiry take their real 10-90 s of virtual time in milliseconds, with no sockets. The
session's timers run on a timer task of the fake supervisor, as on the real one."""

from __future__ import annotations

import time
import uuid

import trio
import trio.testing
from trio_websocket import ConnectionClosed, wrap_client_stream, wrap_server_stream

from hub import protocol
from hub.actors.session import Session
from hub.actors.stats import HubStats
from hub.actors.timers import SessionTimers
from hub.auth import Principal, TokenVerifier, issue_token
from hub.metrics import Metrics
from hub.ws.connection import Connection
from tests.conftest import make_settings


class FakeSupervisor:
    """Just what a session needs when it never touches a thread or the database."""

    def __init__(self, settings) -> None:
        self.settings = settings
        self.stats = HubStats()
        self.metrics = Metrics()
        self.timers = SessionTimers(settings.ws_heartbeat_s, settings.ws_heartbeat_timeout_s)

    async def leave(self, session_id, thread_id, ref=None) -> bool:
        return False

    async def ensure_identity(self, principal) -> None:
        pass


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
    await nursery.start(supervisor.timers.run)
    session = Session(Connection(request_box[0]), principal, supervisor, TokenVerifier(settings))
    return session, supervisor, client_box[0]


def alice(expires_in_s: float = 3600) -> Principal:
    return Principal(uuid.uuid4(), uuid.uuid4(), "owner", "Alice", time.time() + expires_in_s)


async def run_until_closed(nursery, session: Session) -> trio.Event:
    ended = trio.Event()

    async def run_session() -> None:
        await session.run()
        ended.set()

    nursery.start_soon(run_session)
    return ended


async def ping(ws) -> protocol.ServerFrame:
    """An application-level round trip: the session still answers."""
    await ws.send_message(protocol.encode(protocol.Ping(ref="p")))
    return protocol.decode_server(await ws.get_message())


async def close_code(ws) -> int:
    """Read (and discard) until the server closes; the close code it sent."""
    try:
        while True:
            await ws.get_message()
    except ConnectionClosed as exc:
        return exc.reason.code


async def test_a_peer_that_stops_answering_pings_is_closed_with_4000(autojump_clock, tmp_path):
    async with trio.open_nursery() as nursery:
        session, supervisor, (client_ws, client_nursery) = await session_over_memory(
            nursery, alice(), tmp_path
        )
        ended = await run_until_closed(nursery, session)
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
        assert len(supervisor.timers) == 0  # the session ended (cancelled): its timers are gone
        nursery.cancel_scope.cancel()


async def test_an_expired_token_gets_unauthorized_and_close_4001(autojump_clock, tmp_path):
    async with trio.open_nursery() as nursery:
        session, supervisor, (client_ws, _) = await session_over_memory(
            nursery, alice(expires_in_s=60), tmp_path
        )
        ended = await run_until_closed(nursery, session)
        assert isinstance(protocol.decode_server(await client_ws.get_message()), protocol.Ready)
        await trio.sleep(55)
        assert isinstance(await ping(client_ws), protocol.Pong)  # not expired yet
        error = protocol.decode_server(await client_ws.get_message())
        assert isinstance(error, protocol.Error) and error.code == "unauthorized"
        assert await close_code(client_ws) == protocol.CLOSE_UNAUTHORIZED
        await ended.wait()
        assert len(supervisor.timers) == 0
        nursery.cancel_scope.cancel()


async def test_an_auth_refresh_moves_the_expiry(autojump_clock, tmp_path):
    async with trio.open_nursery() as nursery:
        principal = alice(expires_in_s=60)
        session, supervisor, (client_ws, _) = await session_over_memory(
            nursery, principal, tmp_path
        )
        ended = await run_until_closed(nursery, session)
        assert isinstance(protocol.decode_server(await client_ws.get_message()), protocol.Ready)
        await trio.sleep(30)
        fresh = issue_token(
            supervisor.settings,
            user_id=principal.user_id,
            org_id=principal.org_id,
            role="owner",
            ttl_s=120,
        )
        await client_ws.send_message(protocol.encode(protocol.Auth(token=fresh, ref="r")))
        ack = protocol.decode_server(await client_ws.get_message())
        assert isinstance(ack, protocol.Ack) and ack.ref == "r"
        await trio.sleep(60)  # past the first token's expiry
        assert isinstance(await ping(client_ws), protocol.Pong)
        # The new token expires in its turn.
        error = protocol.decode_server(await client_ws.get_message())
        assert isinstance(error, protocol.Error) and error.code == "unauthorized"
        assert await close_code(client_ws) == protocol.CLOSE_UNAUTHORIZED
        await ended.wait()
        nursery.cancel_scope.cancel()
