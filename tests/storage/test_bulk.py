"""Identities and presence are written many at a time, and a bad item still fails alone."""

from __future__ import annotations

import uuid

from hub.errors import Invalid
from hub.storage.actor import Request
from hub.storage.bulk import Identity, PresenceUpdate
from hub.storage.identities import get_user
from hub.storage.sql import fetch
from tests.factories import new_group, new_member, new_thread, run_batch
from tests.queries import thread_presence


def identity(role: str = "vendor") -> Identity:
    user = uuid.uuid4()
    return Identity(user, uuid.uuid4(), str(user), "Connecting Vendor", role)


def _users():
    return (yield fetch("SELECT id, role, display_name FROM user_profiles"))


async def test_many_identities_commit_in_one_batch(storage, engine):
    items = [identity() for _ in range(300)]

    actor = await run_batch(engine, [Request(bulk_kind="identity", item=i) for i in items])

    assert actor.stats.commits == 1
    users = {row["id"]: row for row in await storage.read(_users())}
    assert {i.user_id for i in items} <= set(users)
    assert all(users[i.user_id]["display_name"] == "Connecting Vendor" for i in items)


async def test_a_refused_identity_fails_alone(storage, engine):
    good = [identity(), identity()]
    bad = identity(role="overlord")  # refused by the role check constraint
    requests = [Request(bulk_kind="identity", item=i) for i in (good[0], bad, good[1])]

    await run_batch(engine, requests)

    assert [r.error for r in requests[::2]] == [None, None]
    assert isinstance(requests[1].error, Invalid)
    users = {row["id"] for row in await storage.read(_users())}
    assert {good[0].user_id, good[1].user_id} <= users
    assert bad.user_id not in users


async def test_presence_of_many_threads_is_saved_together(storage, settings, engine):
    alice = await new_member(storage, settings)
    group = await new_group(storage, alice)
    threads = [await new_thread(storage, group, alice, f"t{i}") for i in range(5)]

    await run_batch(
        engine,
        [
            Request(bulk_kind="presence", item=PresenceUpdate(t.id, {alice.user_id: "busy"}))
            for t in threads
        ],
    )

    for thread in threads:
        [presence] = await storage.read(thread_presence(thread.id))
        assert (presence.user_id, presence.status) == (alice.user_id, "busy")


async def test_identities_reach_the_database_through_write_bulk(storage):
    item = identity(role="manager")

    await storage.write_bulk("identity", item)

    user = await storage.read(get_user(item.user_id))
    assert (user.role, user.organization_id) == ("manager", item.organization_id)
