"""Migrations, encryption at rest and key rotation, on both engines."""

from __future__ import annotations

import base64
import json
import secrets
import uuid
from datetime import UTC, datetime

import msgspec
import pytest
import trio

from hub.crypto import DecryptionFailed
from hub.errors import WrongMasterKey
from hub.storage import open_storage
from hub.storage.keys import encryption_keys
from hub.storage.migrations import migrate, migrations_of
from hub.storage.receipts import mark_read
from hub.storage.sql import IntegrityError, execute, fetch, fetchval
from tests.conftest import make_settings
from tests.factories import message, new_group, new_member, new_thread, send
from tests.queries import read_receipts


def _read(sql: str, *args):
    def op():
        return (yield fetch(sql, *args))

    return op()


async def test_migrations_apply_once_and_again_do_nothing(engine):
    first = await migrate(engine)
    again = await migrate(engine)

    assert [m.version for m in first] == [m.version for m in migrations_of(engine)]
    assert again == []
    rows = await engine.read(_read("SELECT version FROM schema_migrations ORDER BY version"))
    assert [r["version"] for r in rows] == [m.version for m in migrations_of(engine)]


async def test_concurrent_migrators_apply_each_migration_once(engine):
    results = []

    async def run() -> None:
        results.append(await migrate(engine))

    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(run)

    # Each migration is its own transaction, so the migrators may share the work out; what
    # matters is that every migration was applied exactly once, by one of them.
    applied = sorted(m.version for r in results for m in r)
    assert applied == [m.version for m in migrations_of(engine)]


async def test_bodies_are_stored_encrypted(storage, settings):
    alice = await new_member(storage, settings)
    thread = await new_thread(storage, await new_group(storage, alice), alice)

    await send(storage, thread, alice, "Florist arrives at 14:30 via the loading dock")

    [row] = await storage.read(_read("SELECT * FROM thread_messages"))
    assert b"Florist" not in bytes(row["body_ciphertext"])
    # Under the sender organization's own data key, not the hub-wide one.
    assert row["key_version"] == storage.sealing.keyring.organizations[alice.org_id]
    assert row["key_version"] != storage.sealing.keyring.active_version
    assert len(bytes(row["body_nonce"])) == 12


async def test_metadata_is_stored_sealed_and_read_back_whole(storage, settings):
    """A location's coordinates are sealed like the body beside them (issue 16, item 16)."""
    alice = await new_member(storage, settings)
    thread = await new_thread(storage, await new_group(storage, alice), alice)
    metadata = {"latitude": 51.50135, "longitude": -0.14189, "label": "Gate B"}
    plain = message(thread, alice, "Meet here")
    await storage.append_message(msgspec.structs.replace(plain, kind="location", metadata=metadata))
    await send(storage, thread, alice, "no metadata")

    located, bare = await storage.read(_read("SELECT * FROM thread_messages ORDER BY seq"))
    stored = json.dumps(located["metadata"])
    assert "51.50135" not in stored and "Gate B" not in stored
    assert list(located["metadata"]) == ["$sealed"]
    assert bare["metadata"] == {}  # nothing to seal, nothing stored
    [opened, _] = await storage.messages(thread.id)
    assert opened.metadata == metadata


async def test_metadata_copied_to_another_thread_fails_to_decrypt(storage, settings):
    alice = await new_member(storage, settings)
    group = await new_group(storage, alice)
    source, target = (
        await new_thread(storage, group, alice),
        await new_thread(storage, group, alice),
    )
    sealed = storage.sealing.keyring.seal_metadata(source.id, {"gate": "4512"})

    with pytest.raises(DecryptionFailed):
        storage.sealing.keyring.open_metadata(target.id, sealed)
    assert storage.sealing.keyring.open_metadata(source.id, sealed) == {"gate": "4512"}


async def test_a_body_copied_to_another_thread_fails_to_decrypt(storage, settings):
    alice = await new_member(storage, settings)
    group = await new_group(storage, alice)
    source, target = (
        await new_thread(storage, group, alice),
        await new_thread(storage, group, alice),
    )
    await send(storage, source, alice, "secret gate code 4512")
    await send(storage, target, alice, "harmless")

    def copy():
        yield execute(
            "UPDATE thread_messages SET body_ciphertext = "
            "(SELECT body_ciphertext FROM thread_messages WHERE thread_id = $1), "
            "body_nonce = (SELECT body_nonce FROM thread_messages WHERE thread_id = $1) "
            "WHERE thread_id = $2",
            source.id,
            target.id,
        )

    await storage.write(lambda now: copy())

    with pytest.raises(DecryptionFailed):
        await storage.messages(target.id)


async def test_rotation_keeps_older_messages_readable(storage, settings):
    alice = await new_member(storage, settings)
    thread = await new_thread(storage, await new_group(storage, alice), alice)
    await send(storage, thread, alice, "sealed with the first key")
    first_version = storage.sealing.keyring.organizations[alice.org_id]

    hub_version = await storage.rotate_key()
    await send(storage, thread, alice, "sealed with the second key")

    # The hub-wide key and every organization's are rotated together.
    new_version = storage.sealing.keyring.organizations[alice.org_id]
    assert (first_version, hub_version, new_version) == (2, 3, 4)
    rows = await storage.read(_read("SELECT key_version FROM thread_messages ORDER BY seq"))
    assert [r["key_version"] for r in rows] == [first_version, new_version]
    assert [m.body for m in await storage.messages(thread.id)] == [
        "sealed with the first key",
        "sealed with the second key",
    ]
    keys = await storage.read(encryption_keys())
    assert [(k.version, k.status, k.organization_id) for k in keys] == [
        (1, "retired", None),
        (2, "retired", alice.org_id),
        (3, "active", None),
        (4, "active", alice.org_id),
    ]


async def test_a_process_learns_a_key_rotated_by_another(settings, tmp_path):
    async with open_storage(settings) as first:
        alice = await new_member(first, settings)
        thread = await new_thread(first, await new_group(first, alice), alice)
        async with open_storage(settings) as second:
            await second.rotate_key()
            await send(second, thread, alice, "from the rotated key")

        assert [m.body for m in await first.messages(thread.id)] == ["from the rotated key"]


async def test_a_wrong_master_key_stops_startup(settings, tmp_path):
    async with open_storage(settings) as storage:
        alice = await new_member(storage, settings)
        await send(
            storage, await new_thread(storage, await new_group(storage, alice), alice), alice, "x"
        )
    wrong = make_settings(
        settings.database_url,
        tmp_path / "wrong",
        HUB_ENCRYPTION_KEY=base64.b64encode(secrets.token_bytes(32)).decode(),
    )

    with pytest.raises(WrongMasterKey, match="HUB_ENCRYPTION_KEY does not match"):
        async with open_storage(wrong):
            pass


async def test_read_marks_only_move_forward(storage, settings):
    alice = await new_member(storage, settings)
    thread = await new_thread(storage, await new_group(storage, alice), alice)
    for i in range(5):
        await send(storage, thread, alice, f"m{i}")

    await storage.write(
        lambda now: mark_read(thread_id=thread.id, user_id=alice.user_id, seq=4, now=now)
    )
    late = await storage.write(
        lambda now: mark_read(thread_id=thread.id, user_id=alice.user_id, seq=2, now=now)
    )

    assert late.last_read_seq == 4
    [receipt] = await storage.read(read_receipts(thread.id))
    assert receipt.last_read_seq == 4


async def test_a_read_mark_beyond_the_last_message_is_refused(storage, settings):
    from hub.errors import Invalid

    alice = await new_member(storage, settings)
    thread = await new_thread(storage, await new_group(storage, alice), alice)
    await send(storage, thread, alice, "only one")

    with pytest.raises(Invalid, match="outside"):
        await storage.write(
            lambda now: mark_read(thread_id=thread.id, user_id=alice.user_id, seq=9, now=now)
        )


async def test_every_table_of_the_schema_exists(storage):
    expected = {
        "organizations",
        "user_profiles",
        "clients",
        "vendor_connection_groups",
        "vendor_connections",
        "messaging_threads",
        "thread_messages",
        "message_attachments",
        "thread_presence",
        "message_read_receipts",
        "vendor_notification_preferences",
        "vendor_communication_audit",
        "message_encryption_keys",
        "thread_mutes",
        "message_acknowledgements",
        "ack_requests",
        "user_notifications",
        "organization_webhooks",
        "notification_deliveries",
    }
    for table in expected:

        def count(table=table):
            return (yield fetchval(f"SELECT count(*) FROM {table}"))

        assert await storage.read(count()) >= 0


async def test_scoping_client_msg_ids_per_thread_keeps_every_row_and_id(engine, tmp_path):
    """Migration client_msg_id_per_thread on a database holding messages, a reply, an attachment
    and a deleted last message: every row keeps its id and its links (SQLite rebuilds the
    table), no id is handed out twice, and the new key refuses only a repeat in one thread."""
    version = _version_of(engine, "client_msg_id_per_thread")
    _use_migrations(engine, tmp_path, version - 1)
    await migrate(engine)
    world = await _commit(engine, _old_world)

    # Up to this migration only: a later one (attachments) makes message_attachments anew.
    _use_migrations(engine, tmp_path, version)
    applied = await migrate(engine)

    assert "client_msg_id_per_thread" in [m.name for m in applied]
    rows = await engine.read(
        _read("SELECT id, thread_id, seq, client_msg_id, reply_to FROM thread_messages ORDER BY id")
    )
    first, second, reply = world["ids"]
    assert [(r["id"], r["seq"], r["reply_to"]) for r in rows] == [
        (first, 1, None),
        (second, 2, None),
        (reply, 3, first),
    ]
    [attachment] = await engine.read(_read("SELECT message_id FROM message_attachments"))
    assert attachment["message_id"] == second
    # The same sender's "c1" in another thread is new; in the same thread it is refused.
    new_id = await _commit(engine, lambda: _insert_message(world, world["other"], 1, "c1"))
    assert new_id > world["deleted"]
    with pytest.raises(IntegrityError):
        await _commit(engine, lambda: _insert_message(world, world["thread"], 5, "c1"))
    del engine.migrations_dir  # back to the engine's own folder
    assert await migrate(engine)  # the rest applies on top


def _version_of(engine, name: str) -> int:
    [version] = [m.version for m in migrations_of(engine) if m.name == name]
    return version


def _use_migrations(engine, tmp_path, count: int) -> None:
    """Make this engine object see only its first `count` migrations (`del
    engine.migrations_dir` gives it its own folder back)."""
    folder = tmp_path / f"migrations-{count}"
    folder.mkdir()
    for path in sorted(type(engine).migrations_dir.glob("*.sql"))[:count]:
        (folder / path.name).write_text(path.read_text())
    engine.migrations_dir = folder


async def test_notifications_keep_every_message_with_its_links(engine, tmp_path):
    """Migration notifications on a database of 0005's shape holding messages, a reply, an
    attached upload and a deleted last message: every row keeps its id and links (SQLite
    rebuilds the table for the new kind), no id is handed out twice, every old message asks for
    no acknowledgement, and a change must ask for one."""
    version = _version_of(engine, "notifications")
    _use_migrations(engine, tmp_path, version - 1)
    await migrate(engine)
    world = await _commit(engine, _world_of_0005)
    _use_migrations(engine, tmp_path, version)
    assert [m.name for m in await migrate(engine)] == ["notifications"]

    rows = await engine.read(
        _read("SELECT id, seq, reply_to, kind, requires_ack FROM thread_messages ORDER BY id")
    )
    first, second, reply = world["ids"]
    assert [(r["id"], r["seq"], r["reply_to"], r["kind"]) for r in rows] == [
        (first, 1, None, "text"),
        (second, 2, None, "attachment"),
        (reply, 3, first, "text"),
    ]
    assert [r["requires_ack"] for r in rows] == [False] * 3
    [attachment] = await engine.read(_read("SELECT message_id FROM message_attachments"))
    assert attachment["message_id"] == second

    def change(seq, requires_ack):
        return _insert_message(
            world, world["thread"], seq, f"x{seq}", kind="change", ack=requires_ack
        )

    new_id = await _commit(engine, lambda: change(5, True))
    assert new_id > world["deleted"]
    with pytest.raises(IntegrityError):
        await _commit(engine, lambda: change(6, False))
    del engine.migrations_dir


def _world_of_0005():
    world = yield from _old_world_rows()
    first = yield from _insert_message(world, world["thread"], 1, "c1")
    second = yield from _insert_message(world, world["thread"], 2, "c2", kind="attachment")
    reply = yield from _insert_message(world, world["thread"], 3, "c3", reply_to=first)
    deleted = yield from _insert_message(world, world["thread"], 4, "c4")
    yield execute("DELETE FROM thread_messages WHERE id = $1", deleted)
    yield execute(
        "INSERT INTO message_attachments (id, thread_id, message_id, uploader_user_id, "
        "uploader_org_id, filename_sealed, content_type, size_bytes, sha256, storage_key, "
        "key_version, created_at) "
        "VALUES ($1, $2, $3, $4, $5, 'sealed', 'application/pdf', 1, $6, 'k', 1, $7)",
        uuid.uuid4(),
        world["thread"],
        second,
        world["user"],
        world["org"],
        "0" * 64,
        datetime.now(UTC),
    )
    return {**world, "ids": [first, second, reply], "deleted": deleted}


async def _commit(engine, make_op):
    writer = await engine.connect_writer()
    try:
        return await writer.commit(make_op)
    finally:
        await writer.aclose()


def _old_world():
    """Rows written with raw SQL, as a database made before the migration holds them."""
    world = yield from _old_world_rows()
    now = datetime.now(UTC)
    first = yield from _insert_message(world, world["thread"], 1, "c1")
    second = yield from _insert_message(world, world["thread"], 2, "c2")
    reply = yield from _insert_message(world, world["thread"], 3, "c3", reply_to=first)
    deleted = yield from _insert_message(world, world["thread"], 4, "c4")
    yield execute("DELETE FROM thread_messages WHERE id = $1", deleted)
    yield execute(
        "INSERT INTO message_attachments (id, thread_id, message_id, uploader_user_id, filename, "
        "content_type, size_bytes, sha256, storage_key, key_version, nonce, created_at) "
        "VALUES ($1, $2, $3, $4, 'a.pdf', 'application/pdf', 1, 'x', 'k', 1, $5, $6)",
        uuid.uuid4(),
        world["thread"],
        second,
        world["user"],
        b"nonce",
        now,
    )
    return {**world, "ids": [first, second, reply], "deleted": deleted}


def _old_world_rows():
    """An organization, its user, a group with two threads and a data key, as raw rows."""
    now = datetime.now(UTC)
    world = {"org": uuid.uuid4(), "user": uuid.uuid4(), "group": uuid.uuid4()}
    world.update(thread=uuid.uuid4(), other=uuid.uuid4())
    yield execute(
        "INSERT INTO organizations (id, name, created_at, updated_at) VALUES ($1, 'o', $2, $2)",
        world["org"],
        now,
    )
    yield execute(
        "INSERT INTO user_profiles (id, organization_id, username, display_name, role, "
        "created_at, updated_at) VALUES ($1, $2, 'u', 'U', 'owner', $3, $3)",
        world["user"],
        world["org"],
        now,
    )
    yield execute(
        "INSERT INTO vendor_connection_groups (id, owner_organization_id, name, created_by, "
        "created_at, updated_at) VALUES ($1, $2, 'g', $3, $4, $4)",
        world["group"],
        world["org"],
        world["user"],
        now,
    )
    for thread_id in (world["thread"], world["other"]):
        yield execute(
            "INSERT INTO messaging_threads (id, group_id, title, created_by, created_at, "
            "updated_at) VALUES ($1, $2, 't', $3, $4, $4)",
            thread_id,
            world["group"],
            world["user"],
            now,
        )
    yield execute(
        "INSERT INTO message_encryption_keys (version, wrapped_key, status, created_at) "
        "VALUES (1, $1, 'active', $2)",
        b"wrapped",
        now,
    )
    return world


def _insert_message(world, thread_id, seq, client_msg_id, reply_to=None, *, kind="text", ack=None):
    """A message row as raw SQL; `ack` sets requires_ack (a column since 0006)."""
    columns = "kind, thread_id, seq, sender_user_id, sender_org_id, body_ciphertext, body_nonce, "
    columns += "key_version, client_msg_id, reply_to, created_at"
    values = "$1, $2, $3, $4, $5, $6, $6, 1, $7, $8, $9"
    args = [kind, thread_id, seq, world["user"], world["org"], b"sealed", client_msg_id]
    args += [reply_to, datetime.now(UTC)]
    if ack is not None:
        columns, values = columns + ", requires_ack", values + ", $10"
        args.append(ack)
    return (
        yield fetchval(
            f"INSERT INTO thread_messages ({columns}) VALUES ({values}) RETURNING id", *args
        )
    )
