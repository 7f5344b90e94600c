"""Where the SQLite engine checkpoints its WAL into the database file: inside the writer's
commits under light load (SQLite's default), from a task of its own while the writer is behind."""

from __future__ import annotations

import sqlite3

import pytest
import trio

from hub.config import sqlite_path
from hub.errors import StorageUnavailable
from hub.storage import open_storage
from hub.storage.messages import count_messages
from hub.storage.sqlite import engine as sqlite_engine
from hub.storage.sqlite.engine import BUSY_BATCH, CHECKPOINT_INTERVAL_S
from tests.conftest import make_settings
from tests.factories import new_group, new_member, new_thread, send


def _messages_in_database_file(path) -> int | None:
    """Count rows in the main database file alone: `immutable` makes SQLite ignore the WAL,
    so rows that are only in the WAL do not count."""
    try:
        conn = sqlite3.connect(f"file:{path}?immutable=1", uri=True)
        try:
            return conn.execute("SELECT count(*) FROM thread_messages").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.DatabaseError:
        return None  # read while a checkpoint was writing the file; look again


async def test_under_load_the_engines_task_checkpoints_the_wal_into_the_database_file(tmp_path):
    settings = make_settings(f"sqlite:///{tmp_path}/hub.db", tmp_path / "var")
    path = sqlite_path(settings.database_url)
    async with open_storage(settings) as storage:
        alice = await new_member(storage, settings)
        thread = await new_thread(storage, await new_group(storage, alice), alice)
        async with trio.open_nursery() as nursery:
            for i in range(300):
                nursery.start_soon(send, storage, thread, alice, f"m{i}")
        # The writers waited together: the actor took a batch big enough to count as load.
        assert storage.stats.largest_batch >= BUSY_BATCH
        # 300 messages are far from the 1,000 WAL pages at which the writer would checkpoint
        # by itself: only the engine's task can have put them into the database file.
        with trio.fail_after(10):
            while _messages_in_database_file(path) != 300:  # noqa: ASYNC110 (polls a file)
                await trio.sleep(0.05)
        assert storage.engine.checkpoints >= 1


async def test_under_light_load_the_writer_keeps_checkpointing_itself(tmp_path):
    settings = make_settings(f"sqlite:///{tmp_path}/hub.db", tmp_path / "var")
    async with open_storage(settings) as storage:
        alice = await new_member(storage, settings)
        thread = await new_thread(storage, await new_group(storage, alice), alice)
        for i in range(20):
            await send(storage, thread, alice, f"m{i}")
        await trio.sleep(CHECKPOINT_INTERVAL_S * 2)
        assert storage.stats.largest_batch < BUSY_BATCH
        # No second connection writing the database file while commits come one at a time.
        assert storage.engine.checkpoints == 0
        assert await storage.read(count_messages(thread.id)) == 20


async def test_checkpoints_stop_with_the_storage_actor(tmp_path):
    settings = make_settings(f"sqlite:///{tmp_path}/hub.db", tmp_path / "var")
    with trio.fail_after(10):
        async with open_storage(settings) as storage:
            alice = await new_member(storage, settings)
            await new_thread(storage, await new_group(storage, alice), alice)
    # Leaving the block returned: the checkpoint task did not outlive the actor. Nothing is
    # left behind in a WAL either: every row is in the database file.
    conn = sqlite3.connect(f"file:{sqlite_path(settings.database_url)}?immutable=1", uri=True)
    try:
        assert conn.execute("SELECT count(*) FROM messaging_threads").fetchone()[0] == 1
    finally:
        conn.close()


async def test_a_failed_checkpoint_is_logged_and_the_next_commit_tries_again(
    tmp_path, monkeypatch, caplog
):
    settings = make_settings(f"sqlite:///{tmp_path}/hub.db", tmp_path / "var")
    path = sqlite_path(settings.database_url)
    real_checkpoint = sqlite_engine._checkpoint
    calls = []

    def failing_once(conn):
        calls.append(conn)
        if len(calls) == 1:
            raise sqlite3.OperationalError("disk I/O error")
        return real_checkpoint(conn)

    monkeypatch.setattr(sqlite_engine, "_checkpoint", failing_once)
    async with open_storage(settings) as storage:
        alice = await new_member(storage, settings)
        thread = await new_thread(storage, await new_group(storage, alice), alice)
        for round_ in range(2):  # a busy batch before and after the failure
            async with trio.open_nursery() as nursery:
                for i in range(150):
                    nursery.start_soon(send, storage, thread, alice, f"r{round_} m{i}")
        with trio.fail_after(10):
            while _messages_in_database_file(path) != 300:  # noqa: ASYNC110 (polls a file)
                await trio.sleep(0.05)
        # Nothing committed was lost to the failure, and the task carried on after it.
        assert await storage.read(count_messages(thread.id)) == 300
        assert len(calls) >= 2
    assert "WAL checkpoint failed, retried later: disk I/O error" in caplog.text


def _wal_salts(path) -> bytes:
    """The WAL header's two salts: SQLite writes new ones each time it starts the WAL over."""
    with open(f"{path}-wal", "rb") as wal:
        return wal.read(32)[16:24]


async def test_under_load_the_wal_starts_over_instead_of_growing(tmp_path):
    """The engine's task copies the WAL only up to where it began, and a busy writer keeps
    adding to it, so on its own the WAL would never be copied whole and never start over: it
    would grow until the blocking restart at WAL_RESTART_PAGES. The writer's first commit after
    each of the task's checkpoints copies the rest, so the commit after that starts it over."""
    settings = make_settings(f"sqlite:///{tmp_path}/hub.db", tmp_path / "var")
    path = sqlite_path(settings.database_url)
    async with open_storage(settings) as storage:
        alice = await new_member(storage, settings)
        thread = await new_thread(storage, await new_group(storage, alice), alice)
        storage.engine.batch_taken(BUSY_BATCH)  # the writer is behind: the task checkpoints
        await send(storage, thread, alice, "wakes the task")
        with trio.fail_after(5):
            while storage.engine.checkpoints == 0:  # noqa: ASYNC110 (polls a counter)
                await trio.sleep(0.005)
        # The task now sleeps for CHECKPOINT_INTERVAL_S: only the writer can copy from here.
        await send(storage, thread, alice, "first after the task's checkpoint")
        before = _wal_salts(path)
        await send(storage, thread, alice, "second after it")
        assert storage.engine.checkpoints == 1
        assert _wal_salts(path) != before
        assert await storage.read(count_messages(thread.id)) == 3


async def test_an_sqlite_without_json_functions_is_refused_at_startup(tmp_path, monkeypatch):
    """Pages of history are read through SQLite's JSON functions: a build without them must
    stop the hub at startup with a line that says so, not fail every read later."""
    connect = sqlite_engine._connect

    def without_json(*args, **kwargs):
        conn = connect(*args, **kwargs)
        conn.set_authorizer(
            lambda action, arg1, arg2, db, trigger: (
                sqlite3.SQLITE_DENY
                if action == sqlite3.SQLITE_FUNCTION and arg2.startswith("json")
                else sqlite3.SQLITE_OK
            )
        )
        return conn

    monkeypatch.setattr(sqlite_engine, "_connect", without_json)
    settings = make_settings(f"sqlite:///{tmp_path}/hub.db", tmp_path / "var")

    with pytest.raises(StorageUnavailable, match="lacks the JSON functions"):
        async with open_storage(settings):
            pass
