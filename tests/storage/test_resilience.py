"""The database going away and coming back, and several hub processes on one PostgreSQL."""

from __future__ import annotations

import contextvars
import gc
import weakref
from urllib.parse import urlsplit, urlunsplit

import pytest
import trio
import trio_asyncio

from hub.errors import StorageUnavailable
from hub.storage import open_storage
from hub.storage.messages import message_rows
from hub.storage.postgres.connection import connect
from hub.storage.postgres.engine import PostgresEngine
from hub.storage.sql import ConnectionLost, fetchval
from hub.storage.threads import get_thread
from tests.conftest import make_settings
from tests.factories import message, new_group, new_member, new_thread


async def _admin(settings, *statements: str) -> None:
    admin_url = settings.database_url.rsplit("/", 1)[0] + "/postgres"
    async with await connect(admin_url) as conn:
        for statement in statements:
            await conn.execute(statement)


@pytest.fixture
def postgres_settings(postgres_url, tmp_path):
    return make_settings(postgres_url, tmp_path / "var", HUB_STORAGE_TIMEOUT_S="2")


async def test_postgres_outage_refuses_writes_then_recovers_without_losing_acked_ones(
    postgres_settings,
):
    settings = postgres_settings
    database = settings.database_url.rsplit("/", 1)[1]
    async with open_storage(settings) as storage:
        alice = await new_member(storage, settings)
        thread = await new_thread(storage, await new_group(storage, alice), alice)
        acked = await storage.append_message(message(thread, alice, "before the outage"))

        await _admin(
            settings,
            f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false',
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{database}'",
        )
        with pytest.raises(StorageUnavailable):
            await storage.append_message(message(thread, alice, "during", "during-1"))
        # While it cannot reconnect, the actor refuses at once rather than letting writers hang.
        with pytest.raises(StorageUnavailable):
            await storage.append_message(message(thread, alice, "during", "during-2"))
        assert storage.stats.connected is False

        await _admin(settings, f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
        after = await retry_until_stored(storage, message(thread, alice, "after the outage"))

        bodies = [m.body for m in await storage.messages(thread.id)]
        assert bodies == ["before the outage", "after the outage"]
        assert (acked.seq, after.seq) == (1, 2)
        assert storage.stats.reconnects >= 1


class PostgresProxy:
    """A TCP proxy between the hub and PostgreSQL that the test cuts and restores: cut, it drops
    every connection it carries and closes each new one at once (counting them), as a database
    that is down does; restored, it carries connections again. Stalled, it keeps every
    connection open and carries nothing, as a host that stopped answering does."""

    def __init__(self, target: str) -> None:
        parts = urlsplit(target)
        self._target = (parts.hostname or "127.0.0.1", parts.port or 5432)
        self._url = target
        self.up = True
        self.stalled = False
        self.refused = 0
        self._refused_changed = trio.Event()
        self._pipes: set[trio.CancelScope] = set()
        self.port = 0

    @property
    def url(self) -> str:
        """The database URL, through the proxy."""
        parts = urlsplit(self._url)
        return urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{self.port}"))

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started()
        await trio.serve_listeners(self._carry, listeners)

    def cut(self) -> None:
        self.up = False
        for scope in self._pipes:
            scope.cancel()

    async def wait_refused(self, count: int) -> None:
        while self.refused < count:
            await self._refused_changed.wait()

    async def _carry(self, client: trio.SocketStream) -> None:
        async with client:
            if not self.up:
                self.refused += 1
                self._refused_changed.set()
                self._refused_changed = trio.Event()
                return
            with trio.CancelScope() as scope:
                self._pipes.add(scope)
                try:
                    async with await trio.open_tcp_stream(*self._target) as server:
                        async with trio.open_nursery() as pumps:
                            pumps.start_soon(self._pump, client, server, pumps.cancel_scope)
                            pumps.start_soon(self._pump, server, client, pumps.cancel_scope)
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                    pass  # one side went away: so does the other
                finally:
                    self._pipes.discard(scope)

    async def _pump(
        self, source: trio.SocketStream, sink: trio.SocketStream, pipe: trio.CancelScope
    ) -> None:
        async for chunk in source:
            if not self.stalled:
                await sink.send_all(chunk)
        pipe.cancel()  # end of stream on one side ends the pipe


@pytest.mark.postgres
async def test_connecting_to_a_host_that_says_nothing_gives_up_within_the_connect_timeout(
    postgres_url, nursery
):
    """A database host that takes the TCP connection and then never answers (a hung server, a
    firewall that drops packets) must cost a reconnect attempt the connect timeout, not
    asyncpg's default minute."""
    proxy = PostgresProxy(postgres_url)
    await nursery.start(proxy.serve)
    proxy.stalled = True
    engine = PostgresEngine(proxy.url, connect_timeout_s=0.5)
    async with trio_asyncio.open_loop():
        with trio.fail_after(5):  # the point of the test: well inside asyncpg's default 60 s
            with pytest.raises(ConnectionLost):
                await engine.connect_writer()


@pytest.mark.postgres
async def test_a_write_just_after_postgres_is_back_is_stored_without_waiting_out_the_backoff(
    postgres_url, tmp_path, nursery
):
    proxy = PostgresProxy(postgres_url)
    await nursery.start(proxy.serve)
    settings = make_settings(proxy.url, tmp_path / "var", HUB_STORAGE_TIMEOUT_S="2")
    async with open_storage(settings) as storage:
        alice = await new_member(storage, settings)
        thread = await new_thread(storage, await new_group(storage, alice), alice)
        await storage.append_message(message(thread, alice, "before the outage"))

        proxy.cut()
        with pytest.raises(StorageUnavailable):
            await storage.append_message(message(thread, alice, "during", "during-1"))
        with trio.fail_after(30):
            # Six refused attempts (50 ms, 100 ms, ... apart): the backoff now waits 1.6 s.
            await proxy.wait_refused(6)
        proxy.up = True
        after = await storage.append_message(message(thread, alice, "after the outage"))

        assert after.seq == 2
        bodies = [m.body for m in await storage.messages(thread.id)]
        assert bodies == ["before the outage", "after the outage"]


@pytest.mark.postgres
async def test_closing_connections_to_a_database_that_stopped_answering_keeps_to_the_deadline(
    postgres_url, nursery
):
    """A connection's goodbye waits for the server to hang up; when it never does, the caller's
    deadline ends the wait and the socket is dropped (the storage actor gives its writer 1 to
    2 s, the read connections 2 s together)."""
    proxy = PostgresProxy(postgres_url)
    await nursery.start(proxy.serve)
    async with trio_asyncio.open_loop():
        engine = PostgresEngine(proxy.url, read_pool_size=4)
        await engine.open()
        writer = await engine.connect_writer()
        assert await engine.read(_value(1)) == 1

        proxy.stalled = True
        with trio.CancelScope(shield=True) as scope:
            scope.deadline = trio.current_time() + 1
            await writer.aclose()
        # The point of the test: these return at all (triopg's close waited forever). That the
        # readers are closed together is tests/storage/test_postgres_reads.py's, in virtual time.
        with trio.fail_after(30):
            await engine.aclose()
        with pytest.raises(ConnectionLost):
            await engine.read(_value(1))


async def test_a_write_connection_the_server_terminated_is_replaced_and_writes_go_on(
    postgres_settings,
):
    settings = postgres_settings
    async with open_storage(settings) as storage:
        alice = await new_member(storage, settings)
        thread = await new_thread(storage, await new_group(storage, alice), alice)
        pid = await storage.write(lambda now: _backend_pid())

        await _admin(settings, f"SELECT pg_terminate_backend({pid})")
        stored = await retry_until_stored(storage, message(thread, alice, "after the kill"))

        assert stored.seq == 1
        assert await storage.write(lambda now: _backend_pid()) != pid
        assert storage.stats.reconnects == 1


async def test_two_hub_processes_on_one_postgres_keep_seqs_gap_free(postgres_settings, tmp_path):
    settings = postgres_settings
    other = make_settings(
        settings.database_url, tmp_path / "other", HUB_ENCRYPTION_KEY=_b64(settings.encryption_key)
    )
    async with open_storage(settings) as first, open_storage(other) as second:
        alice = await new_member(first, settings)
        thread = await new_thread(first, await new_group(first, alice), alice)
        stored = []

        async def writer(storage, prefix: str) -> None:
            for i in range(150):
                stored.append(
                    await storage.append_message(message(thread, alice, prefix, f"{prefix}{i}"))
                )

        async with trio.open_nursery() as nursery:
            for n in range(4):
                nursery.start_soon(writer, first, f"a{n}-")
                nursery.start_soon(writer, second, f"b{n}-")

        assert sorted(s.seq for s in stored) == list(range(1, 1201))
        rows = await first.read(message_rows(thread.id, limit=2000))
        assert [r["seq"] for r in rows] == list(range(1, 1201))
        assert len({r["client_msg_id"] for r in rows}) == 1200
        assert (await first.read(get_thread(thread.id))).last_seq == 1200


async def retry_until_stored(storage, new_message, attempts: int = 100):
    """What a client does: retry with the same client_msg_id until the hub takes it."""
    for _ in range(attempts):
        try:
            return await storage.append_message(new_message)
        except StorageUnavailable:
            await trio.sleep(0.1)
    raise AssertionError("the storage never came back")


def _b64(key: bytes) -> str:
    import base64

    return base64.b64encode(key).decode()


async def test_a_postgres_read_past_the_storage_timeout_fails_and_the_pool_reads_on(
    postgres_settings,
):
    async with open_storage(postgres_settings) as storage:
        with trio.fail_after(10):
            with pytest.raises(StorageUnavailable, match="did not answer within 2"):
                await storage.read(_slow_read(5))
            # The cancelled query did not leave a connection behind that answers wrongly.
            for expected in range(3):
                assert await storage.read(_value(expected)) == expected


_marker: contextvars.ContextVar[object] = contextvars.ContextVar("marker")


async def test_postgres_reads_leave_nothing_that_keeps_the_callers_context(postgres_settings):
    """A read's request context (Quart keeps the whole request in it) must be freed when the
    request ends, not pinned by driver timers until they would have fired."""
    async with open_storage(postgres_settings) as storage:
        refs: list[weakref.ref[object]] = []

        async def request() -> None:
            marker = _Marker()
            refs.append(weakref.ref(marker))
            _marker.set(marker)
            for value in range(5):
                assert await storage.read(_value(value)) == value

        async with trio.open_nursery() as nursery:
            nursery.start_soon(request)
        gc.collect()

        assert refs[0]() is None


class _Marker:
    pass


def _slow_read(seconds: float):
    return (yield fetchval(f"SELECT 1 FROM pg_sleep({seconds})"))


def _backend_pid():
    return (yield fetchval("SELECT pg_backend_pid()"))


def _value(value: int):
    return (yield fetchval("SELECT $1::int", value))
