"""SQLite reads run on the Trio thread while short, and finish in a worker thread, in the same
snapshot, once they run past their budget or meet a lock (hub.storage.sqlite.reads)."""

from __future__ import annotations

import sqlite3
import threading

import pytest
import trio

from hub.config import sqlite_path
from hub.storage import open_storage
from hub.storage.sql import fetchval
from hub.storage.sqlite import reads
from tests.conftest import make_settings
from tests.factories import new_group, new_member, new_thread, send

COUNT_ORGS = "SELECT count(*) FROM organizations"


def long_query(steps: int = 200_000) -> str:
    """Many thousands of SQLite VM steps: past any budget below a millisecond."""
    return (
        f"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {steps}) "
        "SELECT count(*) FROM c"
    )


@pytest.fixture
def settings(tmp_path):
    return make_settings(f"sqlite:///{tmp_path}/hub.db", tmp_path / "var")


@pytest.fixture
async def storage(settings):
    async with open_storage(settings) as opened:
        yield opened


def open_transactions(storage) -> list[bool]:
    return [conn.in_transaction for conn in storage.engine.readers._opened]


def add_organization_elsewhere(settings) -> None:
    other = sqlite3.connect(sqlite_path(settings.database_url), isolation_level=None)
    other.execute(
        "INSERT INTO organizations (id, name, vendor_type, created_at, updated_at) "
        "VALUES ('00000000-0000-0000-0000-000000000001', 'Late Florist', 'florist', "
        "'2026-11-29T00:00:00Z', '2026-11-29T00:00:00Z')"
    )
    other.close()


def busy_timeout_ms(conn: sqlite3.Connection) -> int:
    [value] = conn.execute("PRAGMA busy_timeout").fetchone().values()
    return value


def one(sql: str):
    return (yield fetchval(sql))


async def test_a_short_read_runs_on_the_trio_thread_and_ends_its_transaction(storage, settings):
    alice = await new_member(storage, settings)
    thread = await new_thread(storage, await new_group(storage, alice), alice)
    await send(storage, thread, alice, "first dance at nine")
    threads: list[int] = []

    def op():
        threads.append(threading.get_ident())
        count = yield fetchval("SELECT count(*) FROM thread_messages")
        threads.append(threading.get_ident())
        return count

    assert await storage.read(op()) == 1
    assert set(threads) == {threading.get_ident()}
    assert storage.engine.readers.moved == 0
    assert not any(open_transactions(storage))


async def test_a_read_past_its_budget_finishes_in_a_worker_thread_in_the_same_snapshot(
    storage, settings, monkeypatch
):
    monkeypatch.setattr(reads, "INLINE_BUDGET_S", 0.0)
    threads: list[int] = []

    def op():
        before = yield fetchval(COUNT_ORGS)
        threads.append(threading.get_ident())
        add_organization_elsewhere(settings)  # committed between the read's statements
        long = yield fetchval(long_query())
        threads.append(threading.get_ident())
        after = yield fetchval(COUNT_ORGS)
        return before, long, after

    before, long, after = await storage.read(op())

    assert long == 200_000
    assert storage.engine.readers.moved == 1
    assert threads[0] == threading.get_ident() != threads[1]
    # The statements after the move did not see the row: one snapshot for the whole read.
    assert after == before
    assert not any(open_transactions(storage))
    assert await storage.read(one(COUNT_ORGS)) == before + 1


async def test_a_read_that_meets_a_lock_waits_for_it_in_a_worker_thread(storage):
    readers = storage.engine.readers
    run = readers._run
    seen: list[tuple[bool, int]] = []

    def locked_once_on_the_trio_thread(conn, query):
        on_trio_thread = threading.current_thread() is threading.main_thread()
        seen.append((on_trio_thread, busy_timeout_ms(conn)))
        if on_trio_thread and len(seen) == 1:
            error = sqlite3.OperationalError("database is locked")
            error.sqlite_errorcode = sqlite3.SQLITE_BUSY
            raise error
        return run(conn, query)

    readers._run = locked_once_on_the_trio_thread

    assert await storage.read(one(COUNT_ORGS)) >= 0

    # On the Trio thread SQLite is told not to wait for locks; the worker waits as configured.
    assert seen == [(True, 0), (False, int(storage.engine._busy_timeout_s * 1000))]
    assert readers.moved == 1
    [conn] = readers._opened
    assert busy_timeout_ms(conn) == 0
    assert not conn.in_transaction


async def test_a_cancelled_read_waiting_for_a_worker_thread_gives_its_connection_back(
    storage, monkeypatch
):
    monkeypatch.setattr(reads, "INLINE_BUDGET_S", 0.0)
    readers = storage.engine.readers
    readers._threads = trio.CapacityLimiter(1)
    finished: list[int] = []

    async def long_read() -> None:
        finished.append(await storage.read(one(long_query(3_000_000))))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(long_read)
        await trio.testing.wait_all_tasks_blocked()
        # The only worker thread is busy: this read moves and waits for it, then gives up.
        with trio.move_on_after(0.01) as scope:
            await storage.read(one(long_query()))
        assert scope.cancelled_caught
        assert finished == []

    assert finished == [3_000_000]
    assert readers.moved == 2
    assert len(readers._opened) == 2
    assert not any(open_transactions(storage))
    assert readers._idle.qsize() == 2


async def test_reads_waiting_for_a_worker_thread_hold_at_most_max_open_connections(
    storage, monkeypatch
):
    monkeypatch.setattr(reads, "INLINE_BUDGET_S", 0.0)
    readers = storage.engine.readers
    readers._threads = trio.CapacityLimiter(1)
    readers._open = trio.Semaphore(2)
    results: list[int] = []

    async def long_read() -> None:
        results.append(await storage.read(one(long_query(500_000))))

    async with trio.open_nursery() as nursery:
        for _ in range(5):
            nursery.start_soon(long_read)
        await trio.testing.wait_all_tasks_blocked()
        # One read runs in the thread, one waits for it with its connection, three wait to start.
        assert len(readers._opened) == 2

    assert results == [500_000] * 5
    assert len(readers._opened) == 2
    assert not any(open_transactions(storage))
