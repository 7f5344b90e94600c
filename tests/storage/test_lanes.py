"""Write lanes: on PostgreSQL the storage actor can commit on several connections at once
(HUB_STORAGE_WRITERS), each thread's messages always on the same one; SQLite keeps one (one
write lock per database)."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from hub.storage import open_storage
from hub.storage.messages import count_messages
from hub.storage.postgres.connection import connect
from tests.conftest import make_settings
from tests.factories import message, new_group, new_member, new_thread
from tests.storage.test_group_commit import hold_write_lock


async def threads_in_two_lanes(storage, group, member):
    """Threads until one lands in lane 0 and one in lane 1 (lanes follow the thread's id)."""
    by_lane = {}
    while len(by_lane) < 2:
        thread = await new_thread(storage, group, member)
        by_lane.setdefault(storage.lane_of(thread.id), thread)
    return by_lane[0], by_lane[1]


@pytest.mark.postgres
async def test_a_thread_blocked_in_one_lane_does_not_hold_up_another_lanes_commits(
    postgres_url, tmp_path
):
    settings = make_settings(
        postgres_url, tmp_path / "var", HUB_STORAGE_TIMEOUT_S="30", HUB_STORAGE_WRITERS="2"
    )
    async with open_storage(settings) as storage:
        assert len(storage.lane_stats) == 2
        alice = await new_member(storage, settings)
        group = await new_group(storage, alice)
        blocked, free = await threads_in_two_lanes(storage, group, alice)
        async with hold_write_lock(settings, blocked.id) as release:
            async with trio.open_nursery() as nursery:
                waiting = []

                async def send_blocked() -> None:
                    waiting.append(await storage.append_message(message(blocked, alice, "held")))

                nursery.start_soon(send_blocked)
                await trio.testing.wait_all_tasks_blocked(cushion=0.05)
                # Lane 0 waits on the row lock; lane 1 commits and acknowledges meanwhile
                # (through one lane, it would wait for the lock timeout: 24 s here).
                with trio.fail_after(5):
                    stored = await storage.append_message(message(free, alice, "through"))
                assert stored.seq == 1
                assert await storage.read(count_messages(free.id)) == 1
                assert waiting == []
                assert await storage.read(count_messages(blocked.id)) == 0
                release.set()
        assert [m.seq for m in waiting] == [1]
        lanes = storage.lane_stats
        assert lanes[1].requests_committed == 1  # the one message of the free thread
        assert lanes[0].requests_committed > 1  # the blocked message and every other write
        assert storage.stats.requests_committed == sum(s.requests_committed for s in lanes)


@pytest.mark.postgres
async def test_lanes_keep_every_threads_seqs_gap_free_under_concurrent_writers(
    postgres_url, tmp_path
):
    settings = make_settings(postgres_url, tmp_path / "var", HUB_STORAGE_WRITERS="3")
    async with open_storage(settings) as storage:
        alice = await new_member(storage, settings)
        group = await new_group(storage, alice)
        # Lanes are chosen by thread id; random ids may leave a lane without any of 12
        # threads (about one run in 40), so take threads until every lane has four.
        threads = []
        while min(sum(storage.lane_of(t.id) == lane for t in threads) for lane in range(3)) < 4:
            threads.append(await new_thread(storage, group, alice))
        stored = {thread.id: [] for thread in threads}

        async def writer(thread, n: int) -> None:
            for i in range(40):
                stored[thread.id].append(
                    (await storage.append_message(message(thread, alice, f"w{n}-{i}"))).seq
                )

        async with trio.open_nursery() as nursery:
            for n, thread in enumerate(threads):
                nursery.start_soon(writer, thread, n)
                nursery.start_soon(writer, thread, n + 100)

        for thread in threads:
            assert sorted(stored[thread.id]) == list(range(1, 81))
            assert await storage.read(count_messages(thread.id)) == 80
        assert len(storage.lane_stats) == 3
        assert all(lane.commits > 0 for lane in storage.lane_stats)


async def test_sqlite_has_one_lane_whatever_is_configured(tmp_path):
    settings = make_settings(
        f"sqlite:///{tmp_path}/hub.db", tmp_path / "var", HUB_STORAGE_WRITERS="4"
    )
    async with open_storage(settings) as storage:
        alice = await new_member(storage, settings)
        thread = await new_thread(storage, await new_group(storage, alice), alice)
        await storage.append_message(message(thread, alice, "one lane"))
        assert len(storage.lane_stats) == 1
        assert storage.lane_of(thread.id) == 0


@pytest.mark.postgres
async def test_a_presence_write_in_flight_on_a_thread_does_not_hold_up_its_appends(
    postgres_url, tmp_path
):
    """Presence and read receipts can be in flight on another connection (lane 0 when there are
    several, or another hub process) while the thread's messages are appended; their foreign-key
    checks share-lock the thread row, and the append's lock on that row must not wait for them
    (it only changes non-key columns)."""
    settings = make_settings(postgres_url, tmp_path / "var", HUB_STORAGE_TIMEOUT_S="30")
    async with open_storage(settings) as storage:
        alice = await new_member(storage, settings)
        thread = await new_thread(storage, await new_group(storage, alice), alice)
        async with await connect(settings.database_url) as other:
            await other.execute("BEGIN")
            await other.execute(
                "INSERT INTO thread_presence (thread_id, user_id, status, last_seen_at) "
                "VALUES ($1, $2, 'online', now())",
                thread.id,
                alice.user_id,
            )
            try:
                with trio.fail_after(5):
                    stored = await storage.append_message(message(thread, alice, "not held"))
            finally:
                await other.execute("ROLLBACK")
        assert stored.seq == 1
        assert await storage.read(count_messages(thread.id)) == 1
