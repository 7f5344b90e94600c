"""What the SQLite engine leaves on disk: the WAL is checkpointed into the database file by the
engine's own background task, not inside a commit."""

from __future__ import annotations

import sqlite3

import trio

from hub.config import sqlite_path
from hub.storage import open_storage
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


async def test_committed_messages_reach_the_database_file_without_a_checkpointing_commit(
    tmp_path,
):
    settings = make_settings(f"sqlite:///{tmp_path}/hub.db", tmp_path / "var")
    path = sqlite_path(settings.database_url)
    async with open_storage(settings) as storage:
        alice = await new_member(storage, settings)
        thread = await new_thread(storage, await new_group(storage, alice), alice)
        for i in range(20):
            await send(storage, thread, alice, f"m{i}")
        # The writer never checkpoints (its commits stay short); the engine's task does, soon
        # after the commits. Without it these rows would stay in the WAL.
        with trio.fail_after(10):
            while _messages_in_database_file(path) != 20:  # noqa: ASYNC110 (polls a file)
                await trio.sleep(0.05)
        assert storage.engine.checkpoints >= 1


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
