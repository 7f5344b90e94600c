"""The storage actor: batching, acknowledgement only after commit, isolation, backpressure,
shutdown. Requests are queued into the actor's inbox before it runs where a test needs them to
land in one batch, so the batch composition is not left to scheduling luck."""

from __future__ import annotations

import contextlib
import dataclasses
import sqlite3
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import trio
import trio.testing

from hub.access import decided_in_write
from hub.config import sqlite_path
from hub.errors import Invalid, NotFound, StorageUnavailable
from hub.storage import open_storage
from hub.storage.actor import Request, StorageActor
from hub.storage.audit import audit_rows
from hub.storage.groups import create_group, remove_member
from hub.storage.identities import upsert_identity
from hub.storage.messages import count_messages, message_rows
from hub.storage.postgres.connection import connect
from hub.storage.records import AuditEntry, MessageDraft, SealedMessage
from hub.storage.sql import execute, fetchval
from hub.storage.threads import create_thread, get_thread
from tests.conftest import make_settings
from tests.factories import (
    add_member,
    message,
    new_group,
    new_member,
    new_thread,
    run_batch,
)


def sealed(storage, thread_id, sender, body, client_msg_id=None, reply_to=None) -> SealedMessage:
    return storage.sealing.seal(
        MessageDraft(
            thread_id=thread_id,
            sender_user_id=sender.user_id,
            sender_org_id=sender.org_id,
            client_msg_id=client_msg_id or uuid.uuid4().hex,
            body=body,
            reply_to=reply_to,
        )
    )


async def test_concurrent_writers_share_a_few_commits(storage, settings):
    alice = await new_member(storage, settings)
    thread = await new_thread(storage, await new_group(storage, alice), alice)
    commits_before = storage.stats.commits

    async with trio.open_nursery() as nursery:
        for i in range(200):
            nursery.start_soon(storage.append_message, message(thread, alice, f"m{i}"))

    assert await storage.read(count_messages(thread.id)) == 200
    # 200 writers, but they waited together: a handful of commits, not 200.
    assert storage.stats.commits - commits_before <= 10
    assert storage.stats.largest_batch >= 20


async def test_a_batch_of_many_requests_is_one_transaction(storage, settings, engine):
    alice = await new_member(storage, settings)
    thread = await new_thread(storage, await new_group(storage, alice), alice)
    send, receive = trio.open_memory_channel[Request](1000)
    requests = [Request(message=sealed(storage, thread.id, alice, f"b{i}")) for i in range(500)]
    for request in requests:
        send.send_nowait(request)
    await send.aclose()
    actor = StorageActor(engine, receive, batch_max=1000)

    await actor.run()  # returns once the closed inbox is drained

    assert actor.stats.commits == 1
    assert sorted(r.value.seq for r in requests) == list(range(1, 501))
    assert await storage.read(count_messages(thread.id)) == 500


async def test_one_bad_request_fails_alone_and_the_batch_commits(storage, settings, engine):
    alice = await new_member(storage, settings)
    group = await new_group(storage, alice)
    thread = await new_thread(storage, group, alice)
    first = await storage.append_message(message(thread, alice, "anchor"))
    good_before = Request(message=sealed(storage, thread.id, alice, "good 1"))
    missing_thread = Request(message=sealed(storage, uuid.uuid4(), alice, "lost"))
    bad_reply = Request(
        message=sealed(storage, thread.id, alice, "reply to nothing", reply_to=first.id + 10_000)
    )
    too_long_title = Request(
        make_op=lambda now: create_thread(
            thread_id=uuid.uuid4(),
            group_id=group.id,
            title="x" * 500,
            created_by=alice.user_id,
            now=now,
        ),
        audit=[AuditEntry(action="thread.create", target_type="thread")],
    )
    good_after = Request(message=sealed(storage, thread.id, alice, "good 2"))

    actor = await run_batch(
        engine, [good_before, missing_thread, bad_reply, too_long_title, good_after]
    )

    assert actor.stats.commits == 1
    assert isinstance(missing_thread.error, NotFound)
    assert isinstance(bad_reply.error, Invalid)
    assert isinstance(too_long_title.error, Invalid)
    assert (good_before.value.seq, good_after.value.seq) == (2, 3)
    bodies = [m.body for m in await storage.messages(thread.id)]
    assert bodies == ["anchor", "good 1", "good 2"]
    # The failed request's audit row was not written.
    assert await storage.read(audit_rows(action="thread.create")) == []


async def test_audit_rows_commit_with_their_request(storage, settings):
    alice = await new_member(storage, settings)
    group_id = uuid.uuid4()

    await storage.write(
        lambda now: create_group(
            group_id=group_id,
            owner_organization_id=alice.org_id,
            created_by=alice.user_id,
            name="Lee wedding",
            now=now,
        ),
        audit=lambda group: [
            AuditEntry(
                action="group.create",
                target_type="group",
                target_id=str(group.id),
                actor_user_id=alice.user_id,
                actor_org_id=alice.org_id,
                group_id=group.id,
                ip="203.0.113.9",
                details={"name": group.name},
            )
        ],
    )

    [row] = await storage.read(audit_rows(group_ids=[group_id]))
    assert (row.action, row.target_id, row.actor_user_id) == (
        "group.create",
        str(group_id),
        alice.user_id,
    )
    assert (row.ip, row.details) == ("203.0.113.9", {"name": "Lee wedding"})


async def test_an_acknowledged_message_is_visible_to_an_independent_reader(
    storage, settings, engine
):
    alice = await new_member(storage, settings)
    thread = await new_thread(storage, await new_group(storage, alice), alice)

    stored = await storage.append_message(message(thread, alice, "committed"))

    # `engine` has connections of its own, as another process would.
    rows = await engine.read(message_rows(thread.id))
    assert [(r["id"], r["seq"]) for r in rows] == [(stored.id, stored.seq)]


async def test_a_full_inbox_makes_writers_wait_instead_of_growing(settings, tmp_path):
    small = make_settings(
        settings.database_url,
        tmp_path / "v2",
        HUB_STORAGE_INBOX_SIZE="2",
        HUB_STORAGE_TIMEOUT_S="30",
    )
    async with open_storage(small) as storage:
        alice = await new_member(storage, small)
        thread = await new_thread(storage, await new_group(storage, alice), alice)
        async with hold_write_lock(small, thread.id) as release:
            async with trio.open_nursery() as nursery:
                # The first write takes the actor into a commit that cannot finish yet...
                nursery.start_soon(storage.append_message, message(thread, alice, "first"))
                await trio.testing.wait_all_tasks_blocked(cushion=0.05)
                # ...so of the next ten, two fit the inbox and eight wait to be let in.
                for i in range(10):
                    nursery.start_soon(storage.append_message, message(thread, alice, f"w{i}"))
                await trio.testing.wait_all_tasks_blocked(cushion=0.05)
                stats = storage.lanes._inboxes[storage.lane_of(thread.id)].statistics()
                assert (stats.current_buffer_used, stats.tasks_waiting_send) == (2, 8)
                assert await storage.read(count_messages(thread.id)) == 0
                release.set()
        assert await storage.read(count_messages(thread.id)) == 11


@contextlib.asynccontextmanager
async def hold_write_lock(settings, thread_id) -> AsyncIterator[trio.Event]:
    """Block the storage actor's commits from outside, as a long foreign transaction would.

    SQLite: another connection holds the database's write lock. PostgreSQL: another session
    locks the thread row the actor must update. Set the yielded event to let go."""
    release, locked = trio.Event(), trio.Event()

    async def hold() -> None:
        if settings.backend == "sqlite":
            conn = sqlite3.connect(sqlite_path(settings.database_url), isolation_level=None)
            conn.execute("BEGIN IMMEDIATE")
            locked.set()
            await release.wait()
            conn.execute("ROLLBACK")
            conn.close()
        else:
            async with await connect(settings.database_url) as conn:
                await conn.execute("BEGIN")
                await conn.execute(
                    "SELECT 1 FROM messaging_threads WHERE id = $1 FOR UPDATE", thread_id
                )
                locked.set()
                await release.wait()
                await conn.execute("ROLLBACK")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(hold)
        await locked.wait()
        try:
            yield release
        finally:
            release.set()


async def test_reads_do_not_wait_behind_a_blocked_writer(storage, settings):
    alice = await new_member(storage, settings)
    thread = await new_thread(storage, await new_group(storage, alice), alice)
    await storage.append_message(message(thread, alice, "before"))
    async with hold_write_lock(settings, thread.id) as release:
        async with trio.open_nursery() as nursery:
            pending = trio.Event()

            async def blocked_writer():
                pending.set()
                await storage.append_message(message(thread, alice, "after"))

            nursery.start_soon(blocked_writer)
            await pending.wait()
            await trio.testing.wait_all_tasks_blocked(cushion=0.05)

            bodies = [m.body for m in await storage.messages(thread.id)]

            assert bodies == ["before"]
            release.set()
    assert [m.body for m in await storage.messages(thread.id)] == ["before", "after"]


async def test_closing_storage_commits_everything_it_accepted(settings):
    accepted = []
    async with open_storage(settings) as storage:
        alice = await new_member(storage, settings)
        thread = await new_thread(storage, await new_group(storage, alice), alice)
        for i in range(300):
            request = Request(message=storage.sealing.seal(message(thread, alice, f"s{i}")))
            storage.lanes._inboxes[storage.lane_of(thread.id)].send_nowait(request)
            accepted.append(request)
    # The context has exited: the actor drained its inbox before stopping.
    assert all(r.done.is_set() and r.error is None for r in accepted)
    async with open_storage(settings) as storage:
        assert await storage.read(count_messages(thread.id)) == 300


async def test_cancelled_storage_still_commits_what_it_accepted(settings):
    accepted = []
    with trio.CancelScope() as scope:
        async with open_storage(settings) as storage:
            alice = await new_member(storage, settings)
            thread = await new_thread(storage, await new_group(storage, alice), alice)
            for i in range(300):
                request = Request(message=storage.sealing.seal(message(thread, alice, f"c{i}")))
                storage.lanes._inboxes[storage.lane_of(thread.id)].send_nowait(request)
                accepted.append(request)
            scope.cancel()
            await trio.sleep_forever()
    assert all(r.done.is_set() and r.error is None for r in accepted)
    async with open_storage(settings) as storage:
        assert await storage.read(count_messages(thread.id)) == 300


async def test_a_write_the_database_cannot_take_is_refused_not_acknowledged(settings, tmp_path):
    quick = make_settings(settings.database_url, tmp_path / "v3", HUB_STORAGE_TIMEOUT_S="0.5")
    async with open_storage(quick) as storage:
        alice = await new_member(storage, quick)
        thread = await new_thread(storage, await new_group(storage, alice), alice)
        async with hold_write_lock(quick, thread.id) as release:
            with pytest.raises(StorageUnavailable):
                await storage.append_message(message(thread, alice, "never acked", "n-1"))
            release.set()
        # Once the database takes writes again, a retry with the same id stores it exactly once.
        stored = await storage.append_message(message(thread, alice, "never acked", "n-1"))
        assert await storage.read(count_messages(thread.id)) == 1
        assert stored.seq == 1


async def test_answered_requests_leave_the_deadline_watch(storage, settings):
    """Every request in flight has an entry in the lanes' deadline heap; one that is answered
    must leave it, or a busy hub would hold every request of the last timeout in memory."""
    alice = await new_member(storage, settings)
    thread = await new_thread(storage, await new_group(storage, alice), alice)
    async with trio.open_nursery() as nursery:
        for i in range(200):
            nursery.start_soon(storage.append_message, message(thread, alice, f"m{i}"))
    assert len(storage.lanes._deadlines) == 0  # private: what is still watched is the point


async def test_a_request_already_in_a_commit_is_answered_by_the_commit_not_its_deadline(
    storage, settings
):
    alice = await new_member(storage, settings)
    thread = await new_thread(storage, await new_group(storage, alice), alice)
    answers = []
    async with hold_write_lock(settings, thread.id) as release:
        async with trio.open_nursery() as nursery:

            async def sender() -> None:
                answers.append(
                    await storage.append_message(message(thread, alice, "slow"), timeout_s=0.2)
                )

            nursery.start_soon(sender)
            await trio.testing.wait_all_tasks_blocked(cushion=0.05)  # taken, commit blocked
            await trio.sleep(0.5)  # the point of the test: outlast the caller's 0.2 s deadline
            release.set()

    # The message was stored, so the caller hears so; it is not told "unavailable".
    assert [a.seq for a in answers] == [1]
    assert await storage.read(count_messages(thread.id)) == 1


async def test_a_request_failed_by_its_deadline_while_waiting_is_never_committed(storage, settings):
    """The caller of a request that was still waiting when its deadline passed is told it was
    not stored; the actor must not commit it later, or the caller's retry would store it twice
    (a write that has no client_msg_id to deduplicate it)."""
    alice = await new_member(storage, settings)
    thread = await new_thread(storage, await new_group(storage, alice), alice)
    refused = []
    async with hold_write_lock(settings, thread.id) as release:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(storage.append_message, message(thread, alice, "first", "w-1"))
            await trio.testing.wait_all_tasks_blocked(cushion=0.05)  # taken, commit blocked

            async def late() -> None:
                with pytest.raises(StorageUnavailable) as caught:
                    await storage.append_message(
                        message(thread, alice, "told not stored", "w-2"), timeout_s=0.2
                    )
                refused.append(str(caught.value))

            nursery.start_soon(late)
            await trio.sleep(0.5)  # outlast the waiting request's 0.2 s deadline
            release.set()
    # A later write on the same lane passes through the inbox behind the refused one.
    await storage.append_message(message(thread, alice, "after", "w-3"))

    assert refused and "did not take the request" in refused[0]
    rows = await storage.read(message_rows(thread.id, limit=10))
    assert [row["client_msg_id"] for row in rows] == ["w-1", "w-3"]


async def test_an_unexpected_failure_fails_its_batch_and_the_actor_carries_on(storage, settings):
    from hub.errors import HubError

    def broken(now):
        raise RuntimeError("a bug in an operation")
        yield  # pragma: no cover - makes this a generator, like every operation

    reconnects_before = storage.stats.reconnects
    with pytest.raises(HubError, match="internal storage error"):
        await storage.write(broken)

    alice = await new_member(storage, settings)
    thread = await new_thread(storage, await new_group(storage, alice), alice)
    stored = await storage.append_message(message(thread, alice, "still serving"))
    assert stored.seq == 1
    # It did not keep committing through a connection that might be the broken part.
    assert storage.stats.reconnects == reconnects_before + 1


async def test_a_row_the_database_refuses_in_the_bulk_insert_fails_alone(storage, settings, engine):
    """A sender unknown to the database passes every check made before the insert, so the whole
    bulk insert (and its thread bump) is refused; the batch must fall back to row by row and
    still store the others with gap-free seqs."""
    alice = await new_member(storage, settings)
    thread = await new_thread(storage, await new_group(storage, alice), alice)
    stranger = dataclasses.replace(
        alice, principal=dataclasses.replace(alice.principal, user_id=uuid.uuid4())
    )
    batch = [
        Request(message=sealed(storage, thread.id, alice, "good 1")),
        Request(message=sealed(storage, thread.id, stranger, "from nobody")),
        Request(message=sealed(storage, thread.id, alice, "good 2")),
    ]

    actor = await run_batch(engine, batch)

    assert actor.stats.commits == 1
    assert isinstance(batch[1].error, Invalid)
    assert (batch[0].value.seq, batch[2].value.seq) == (1, 2)
    assert [m.body for m in await storage.messages(thread.id)] == ["good 1", "good 2"]
    assert (await storage.read(get_thread(thread.id))).last_seq == 2


@pytest.mark.parametrize("path", ["bulk", "one by one"])
async def test_a_client_msg_id_is_idempotent_per_thread_within_one_batch(
    storage, settings, engine, path
):
    """Both append paths: the bulk one, and the one-by-one fallback a row refused by the bulk
    insert (a sender unknown to the database) sends the whole run through."""
    alice = await new_member(storage, settings)
    group = await new_group(storage, alice)
    first, other = await new_thread(storage, group, alice), await new_thread(storage, group, alice)
    earlier = await storage.append_message(message(first, alice, "earlier", "stored-before"))
    batch = [
        Request(message=sealed(storage, first.id, alice, "in first", "reused")),
        Request(message=sealed(storage, other.id, alice, "in other", "reused")),
        Request(message=sealed(storage, first.id, alice, "in first", "reused")),
        Request(message=sealed(storage, other.id, alice, "not a repeat", "stored-before")),
        Request(message=sealed(storage, first.id, alice, "earlier", "stored-before")),
    ]
    if path == "one by one":
        stranger = dataclasses.replace(
            alice, principal=dataclasses.replace(alice.principal, user_id=uuid.uuid4())
        )
        batch.append(Request(message=sealed(storage, other.id, stranger, "from nobody")))

    actor = await run_batch(engine, batch)

    assert actor.stats.commits == 1
    in_first, in_other, repeat, not_a_repeat, earlier_again = (r.value for r in batch[:5])
    assert [m.duplicate for m in (in_first, in_other, not_a_repeat)] == [False, False, False]
    assert (repeat.id, repeat.duplicate) == (in_first.id, True)
    assert (earlier_again.id, earlier_again.duplicate) == (earlier.id, True)
    assert [m.body for m in await storage.messages(first.id)] == ["earlier", "in first"]
    assert [m.body for m in await storage.messages(other.id)] == ["in other", "not a repeat"]
    if path == "one by one":
        assert isinstance(batch[-1].error, Invalid)


async def test_a_batch_repeating_more_ids_than_one_lookup_statement_holds_stores_nothing(
    storage, settings, engine
):
    """SQLite looks stored ids up in statements of a bounded number of keys."""
    alice = await new_member(storage, settings)
    thread = await new_thread(storage, await new_group(storage, alice), alice)
    ids = [f"c{i}" for i in range(700)]
    originals = await run_batch(
        engine, [Request(message=sealed(storage, thread.id, alice, i, i)) for i in ids]
    )
    repeats = [Request(message=sealed(storage, thread.id, alice, i, i)) for i in ids]

    await run_batch(engine, repeats)

    assert originals.stats.commits == 1
    assert all(r.value.duplicate for r in repeats)
    assert [r.value.seq for r in repeats] == list(range(1, 701))
    assert await storage.read(count_messages(thread.id)) == 700


async def test_a_transaction_that_fails_at_its_last_statement_is_undone_and_the_writer_goes_on(
    storage, engine
):
    """PostgreSQL sends savepoint statements late, in one round trip with COMMIT: one that fails
    there must still undo the whole transaction and leave the connection ready for the next."""

    def identity(user_id: uuid.UUID):
        return upsert_identity(
            user_id=user_id,
            organization_id=uuid.uuid4(),
            username="florist",
            display_name="Florist",
            role="owner",
            now=datetime.now(UTC),
        )

    def fails_last(user_id: uuid.UUID):
        yield execute("SAVEPOINT request")
        yield from identity(user_id)
        yield execute("RELEASE SAVEPOINT request")
        yield execute("RELEASE SAVEPOINT no_such_savepoint")  # refused by the database

    def stored(user_id: uuid.UUID):
        return (yield fetchval("SELECT count(*) FROM user_profiles WHERE id = $1", user_id))

    writer = await engine.connect_writer()
    try:
        undone, kept = uuid.uuid4(), uuid.uuid4()
        with pytest.raises(Exception, match="no_such_savepoint"):
            await writer.commit(lambda: fails_last(undone))
        await writer.commit(lambda: identity(kept))
    finally:
        await writer.aclose()
    assert await engine.read(stored(undone)) == 0
    assert await engine.read(stored(kept)) == 1


async def test_a_message_whose_sender_may_not_post_fails_alone_and_leaves_no_trace(
    storage, settings, engine
):
    """Access decided in the write (hub.access.decided_in_write): a refused message fails with
    the refusal, writes neither its row nor its audit row, and takes no seq."""
    alice = await new_member(storage, settings)
    stranger = await new_member(storage, settings)
    thread = await new_thread(storage, await new_group(storage, alice), alice)

    def post(sender, body):
        return Request(
            message=sealed(storage, thread.id, sender, body),
            authorize=decided_in_write(sender.principal, thread.id, "post"),
            audit=[AuditEntry(action="message.send", target_type="message", target_id=body)],
        )

    batch = [post(alice, "first"), post(stranger, "intruder"), post(alice, "second")]
    actor = await run_batch(engine, batch)

    assert actor.stats.commits == 1
    assert isinstance(batch[1].error, NotFound)
    assert (batch[0].value.seq, batch[2].value.seq) == (1, 2)
    assert [m.body for m in await storage.messages(thread.id)] == ["first", "second"]
    audit = await storage.read(audit_rows(action="message.send"))
    # Written for the allowed messages only, each naming the group the decision found.
    assert [(a.target_id, a.group_id) for a in audit] == [
        ("first", thread.group_id),
        ("second", thread.group_id),
    ]


async def test_a_removal_committed_earlier_in_the_same_batch_refuses_the_message_after_it(
    storage, settings, engine
):
    """The decision sees the transaction it is part of: no window between check and write."""
    owner = await new_member(storage, settings)
    vendor = await new_member(storage, settings, role="vendor")
    group = await new_group(storage, owner)
    await add_member(storage, group, vendor, invited_by=owner)
    thread = await new_thread(storage, group, owner)

    def post(body):
        return Request(
            message=sealed(storage, thread.id, vendor, body),
            authorize=decided_in_write(vendor.principal, thread.id, "post"),
        )

    before, after = post("before"), post("after")
    removal = Request(
        make_op=lambda now: remove_member(group_id=group.id, organization_id=vendor.org_id, now=now)
    )
    await run_batch(engine, [before, removal, after])

    assert before.value.seq == 1
    assert removal.error is None
    assert isinstance(after.error, NotFound)
    assert [m.body for m in await storage.messages(thread.id)] == ["before"]
