"""Values the database refuses fail the request that sent them, never its batch neighbours.

The doors refuse these values first (hub.validation); these tests go around the doors, straight
to the storage actor, to pin the second line of defence: a group commit in which one request
carries an integer beyond bigint or text PostgreSQL cannot store still commits everyone else's.
Before, only constraint violations were isolated: any other refusal failed the whole batch
(and asyncpg's refusal of an argument even dropped the write connection)."""

from __future__ import annotations

import uuid

import msgspec

from hub.errors import Invalid
from hub.storage.actor import Request
from hub.storage.audit import audit_rows
from hub.storage.records import AuditEntry, MessageDraft
from hub.storage.sql import fetchval
from hub.storage.threads import create_thread
from tests.factories import new_group, new_member, new_thread, run_batch

BEYOND_BIGINT = 2**63


def _sealed(storage, thread, sender, body, **fields):
    return storage.sealing.seal(
        MessageDraft(
            thread_id=thread.id,
            sender_user_id=sender.user_id,
            sender_org_id=sender.org_id,
            client_msg_id=fields.pop("client_msg_id", uuid.uuid4().hex),
            body=body,
            **fields,
        )
    )


async def test_values_the_database_cannot_take_fail_alone_in_one_commit(storage, settings, engine):
    alice = await new_member(storage, settings)
    group = await new_group(storage, alice)
    thread = await new_thread(storage, group, alice)
    good = [Request(message=_sealed(storage, thread, alice, f"good {i}")) for i in range(3)]
    huge_reply = Request(
        message=_sealed(storage, thread, alice, "reply to nowhere", reply_to=BEYOND_BIGINT)
    )
    # Metadata is sealed before it is stored; a row that carries it in the clear (as rows did
    # before) must still fail alone when PostgreSQL cannot take it.
    nul_metadata = Request(
        message=msgspec.structs.replace(
            _sealed(storage, thread, alice, "nul"), metadata={"note": "a\x00b"}
        )
    )
    nul_client_msg_id = Request(
        message=_sealed(storage, thread, alice, "nul id", client_msg_id="m\x00")
    )
    nul_title = Request(
        make_op=lambda now: create_thread(
            thread_id=uuid.uuid4(),
            group_id=group.id,
            title="a\x00b",
            created_by=alice.user_id,
            now=now,
        )
    )
    batch = [good[0], huge_reply, nul_metadata, good[1], nul_title, nul_client_msg_id, good[2]]

    actor = await run_batch(engine, batch)

    assert actor.stats.commits == 1
    assert isinstance(huge_reply.error, Invalid)
    if settings.backend == "postgres":
        # PostgreSQL cannot store U+0000 in text or jsonb; SQLite can, and did.
        for refused in (nul_metadata, nul_client_msg_id, nul_title):
            assert isinstance(refused.error, Invalid), refused.error
    else:
        assert all(r.error is None for r in (nul_metadata, nul_client_msg_id, nul_title))
    assert all(r.error is None for r in good)
    stored = await storage.messages(thread.id)
    assert [m.body for m in stored if m.body.startswith("good")] == ["good 0", "good 1", "good 2"]
    assert "reply to nowhere" not in [m.body for m in stored]
    assert [m.seq for m in stored] == list(range(1, len(stored) + 1))  # still gap-free


async def test_a_refusal_outside_every_savepoint_fails_only_its_own_request(
    storage, settings, engine
):
    """An access decision runs in the write transaction before its message, outside the
    message's savepoint: a statement refused there undoes the batch. The actor then commits
    each request alone, so the neighbours are stored all the same."""
    alice = await new_member(storage, settings)
    thread = await new_thread(storage, await new_group(storage, alice), alice)

    def refused_decision(rows):
        yield fetchval("SELECT $1 + 0", BEYOND_BIGINT * 4)
        raise AssertionError("the database took an integer beyond bigint")

    good = [Request(message=_sealed(storage, thread, alice, f"good {i}")) for i in range(4)]
    bad = Request(
        message=_sealed(storage, thread, alice, "never stored"),
        authorize=refused_decision,
        audit=[AuditEntry(action="message.send", target_type="message")],
    )
    audited_neighbour = Request(
        message=_sealed(storage, thread, alice, "audited"),
        audit=[AuditEntry(action="message.send", target_type="message", target_id="kept")],
    )

    actor = await run_batch(engine, [good[0], good[1], bad, audited_neighbour, good[2], good[3]])

    assert isinstance(bad.error, Invalid)
    assert all(r.error is None for r in [*good, audited_neighbour])
    bodies = [m.body for m in await storage.messages(thread.id)]
    assert bodies == ["good 0", "good 1", "audited", "good 2", "good 3"]
    rows = await storage.read(audit_rows(action="message.send"))
    assert [row.target_id for row in rows] == ["kept"]
    # The writer kept its connection: a refused statement is not a lost database.
    assert actor.stats.reconnects == 0
