"""PostgreSQL's read connections (hub.storage.postgres.reads): bounded, reused, and dropped when
a read fails or the server closes them."""

from __future__ import annotations

import pytest
import trio
import trio_asyncio

from hub.errors import StorageUnavailable
from hub.storage import open_storage
from hub.storage.postgres.connection import connect
from hub.storage.postgres.reads import ReadConnections
from hub.storage.sql import fetchval
from tests.conftest import make_settings

pytestmark = pytest.mark.postgres


@pytest.fixture
def postgres_settings(postgres_url, tmp_path):
    return make_settings(postgres_url, tmp_path / "var", HUB_STORAGE_TIMEOUT_S="2")


async def _admin_fetch(settings, sql: str, *args):
    admin_url = settings.database_url.rsplit("/", 1)[0] + "/postgres"
    async with await connect(admin_url) as conn:
        return await conn.fetch(sql, *args)


def _backend_pid(sleep_s: float = 0):
    return (yield fetchval("SELECT pg_backend_pid() FROM pg_sleep($1)", sleep_s))


async def test_reads_reuse_connections_and_never_open_more_than_the_pool_size(
    postgres_settings,
):
    async with open_storage(postgres_settings) as storage:
        size = storage.engine._read_pool_size
        # One at a time, reads take the connections in turn: each serves, none is opened anew.
        in_turn = [await storage.read(_backend_pid()) for _ in range(2 * size)]
        assert in_turn[:size] == in_turn[size:]
        assert len(set(in_turn)) == size

        pids = []

        async def read() -> None:
            pids.append(await storage.read(_backend_pid(0.2)))

        async with trio.open_nursery() as nursery:
            for _ in range(3 * size):
                nursery.start_soon(read)

        assert len(pids) == 3 * size
        assert set(pids) == set(in_turn)


async def test_every_read_connection_is_open_before_the_first_read(postgres_settings):
    async with open_storage(postgres_settings) as storage:
        size = storage.engine._read_pool_size
        opened = {conn.server_pid for conn in storage.engine._reads._idle}
        assert len(opened) == size
        rows = await _admin_fetch(
            postgres_settings,
            "SELECT pid FROM pg_stat_activity WHERE pid = ANY($1::int[])",
            list(opened),
        )
        assert {row["pid"] for row in rows} == opened  # live backends on the server

        pids = []

        async def read() -> None:
            pids.append(await storage.read(_backend_pid(0.2)))

        async with trio.open_nursery() as nursery:
            for _ in range(size):
                nursery.start_soon(read)

        assert set(pids) == opened  # a burst of reads opened nothing new


async def test_a_connection_the_server_closed_while_idle_is_not_handed_out(postgres_settings):
    async with open_storage(postgres_settings) as storage:
        pid = await storage.read(_backend_pid())
        [row] = await _admin_fetch(
            postgres_settings, "SELECT pg_terminate_backend($1) AS done", pid
        )
        assert row["done"] is True
        await _until_no_backends(postgres_settings, "pid = $1", pid)
        # The precondition, not the behaviour under test: the hub's loop has read the server's
        # goodbye on the idle connection (that takes a pass of the loop, not a set time).
        [idle] = [conn for conn in storage.engine._reads._idle if conn.server_pid == pid]
        with trio.fail_after(5):
            # asyncpg sets the flag from asyncio's side: there is no Trio event to wait on.
            while not idle.is_closed():  # noqa: ASYNC110
                await trio.sleep(0.01)

        assert await storage.read(_backend_pid()) != pid


async def test_a_read_cut_off_mid_query_drops_its_connection_and_the_next_read_works(
    postgres_settings,
):
    async with open_storage(postgres_settings) as storage:
        pid = await storage.read(_backend_pid())

        async def cut_off() -> None:
            await trio.sleep(0.3)
            await _admin_fetch(postgres_settings, "SELECT pg_terminate_backend($1)", pid)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(cut_off)
            with pytest.raises(StorageUnavailable):
                await storage.read(_backend_pid(3))

        assert await storage.read(_backend_pid()) != pid


async def test_closing_the_storage_closes_its_read_connections(postgres_settings):
    database = postgres_settings.database_url.rsplit("/", 1)[1]
    async with open_storage(postgres_settings) as storage:
        async with trio.open_nursery() as nursery:
            for _ in range(4):
                nursery.start_soon(storage.read, _backend_pid(0.1))

    async with trio_asyncio.open_loop():  # the storage's own loop closed with it
        await _until_no_backends(postgres_settings, "datname = $1", database)


async def _until_no_backends(settings, where: str, arg) -> None:
    """Backends leave pg_stat_activity a moment after they are told to go: poll for it."""
    with trio.fail_after(5):
        while True:
            rows = await _admin_fetch(
                settings, f"SELECT count(*) AS n FROM pg_stat_activity WHERE {where}", arg
            )
            if rows[0]["n"] == 0:
                return
            await trio.sleep(0.02)


class _SilentConnection:
    """A connection whose goodbye the server never answers: `close` waits until cancelled."""

    def __init__(self, log: list[str], name: str) -> None:
        self._log, self._name = log, name

    def is_closed(self) -> bool:
        return False

    async def close(self) -> None:
        self._log.append(f"closing {self._name}")
        try:
            await trio.sleep_forever()
        finally:
            self._log.append(f"dropped {self._name}")


async def test_shutdown_says_goodbye_to_every_idle_connection_at_once(autojump_clock):
    """Against a database that stopped answering, every idle read connection gets its goodbye
    at the same moment and all are dropped together after 2 s: shutdown does not wait 2 s per
    connection (virtual time: Trio's autojump clock, no real waiting)."""
    log: list[str] = []
    names = iter("abcd")

    async def connect() -> _SilentConnection:
        return _SilentConnection(log, next(names))

    reads = ReadConnections(4, connect, drive=None, unavailable=(OSError,))
    await reads.fill()
    started = trio.current_time()
    await reads.aclose()

    assert sorted(log[:4]) == ["closing a", "closing b", "closing c", "closing d"]
    assert sorted(log[4:]) == ["dropped a", "dropped b", "dropped c", "dropped d"]
    assert trio.current_time() - started == pytest.approx(2.0)
