"""Per-organization data keys and erasing an organization by destroying them, both backends:
each organization seals under keys of its own (rotated with the hub's), and after an erasure
nothing that organization wrote opens anywhere (in the live database, or in a copy of its rows
taken before), while every other organization's messages still do; its files are gone, its
names pseudonymised, its tokens refused, other nodes forget its keys, and the erasure is
audited without content."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from hub import client as hub_client
from hub import protocol
from hub.crypto import DecryptionFailed, KeyDestroyed, MasterKey, Sealed
from hub.privacy.organizations import erase
from hub.storage import keys, open_storage
from hub.storage.records import AuditEntry
from tests.attachments.conftest import png
from tests.notifications.conftest import Wedding


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


async def message_rows(wedding: Wedding) -> list[dict]:
    return await wedding.rows(
        "SELECT id, thread_id, sender_org_id, body_ciphertext, body_nonce, key_version, metadata "
        "FROM thread_messages ORDER BY id"
    )


async def key_rows(wedding: Wedding) -> list[dict]:
    return await wedding.rows(
        "SELECT version, organization_id, status, wrapped_key, destroyed_at "
        "FROM message_encryption_keys ORDER BY version"
    )


async def fresh_ring(wedding: Wedding):
    """The keys as a process starting now would load them (nothing from memory)."""
    master = MasterKey(wedding.settings.encryption_key)
    rows = await wedding.hub.storage.read(keys.encryption_keys())
    return keys.keyring_from(rows, master)


def opens(ring, row: dict) -> bool:
    try:
        ring.open_message(
            row["thread_id"],
            Sealed(bytes(row["body_ciphertext"]), bytes(row["body_nonce"]), row["key_version"]),
        )
    except DecryptionFailed:
        return False
    return True


def audit_entry(wedding: Wedding) -> AuditEntry:
    return AuditEntry(
        action="privacy.erase_organization",
        target_type="organization",
        target_id=str(wedding.florist.org_id),
        details={"via": "test"},
    )


async def test_each_organization_seals_under_keys_of_its_own(wedding: Wedding):
    await wedding.post(wedding.planner, "Welcome, everyone")
    await wedding.post(wedding.florist, "Peonies at 10")
    await wedding.post(wedding.florist_admin, "Invoice follows")
    await wedding.post(wedding.dj, "Sound check at 2")
    by_org = {}
    for row in await message_rows(wedding):
        by_org.setdefault(row["sender_org_id"], set()).add(row["key_version"])
    owners = {r["version"]: r["organization_id"] for r in await key_rows(wedding)}
    # One key per organization, each its own, none the hub-wide one.
    assert len(by_org) == 3
    for org_id, versions in by_org.items():
        assert [owners[v] for v in versions] == [org_id]

    rotated = await wedding.hub.storage.sealing.rotate_key()
    await wedding.post(wedding.florist, "After the rotation")
    rows = await message_rows(wedding)
    keyed = {r["version"]: r for r in await key_rows(wedding)}
    newest = rows[-1]
    assert newest["key_version"] > rotated  # the organization's own new key, made after
    assert keyed[newest["key_version"]]["organization_id"] == wedding.florist.org_id
    assert keyed[newest["key_version"]]["status"] == "active"
    ring = await fresh_ring(wedding)
    assert all(opens(ring, row) for row in rows)  # older rows still open
    page = await wedding.rest.call("GET", f"/threads/{wedding.thread.id}", wedding.dj)
    assert [m["body"] for m in page.json["messages"]][-1] == "After the rotation"


async def test_erasing_an_organization_makes_everything_it_wrote_unreadable(wedding: Wedding):
    await wedding.post(wedding.planner, "Welcome, everyone")
    await wedding.post(wedding.florist, "The gate code is 4417", metadata={"note": "private"})
    await wedding.post(wedding.florist_admin, "Invoice 2027-03 follows")
    await wedding.post(wedding.dj, "Sound check at 2")
    upload = await wedding.rest.upload(
        wedding.florist, wedding.thread.id, png(), filename="arch.png", content_type="image/png"
    )
    assert upload.status == 201, upload.body
    sent = await wedding.post(
        wedding.florist, "The arch", kind="attachment", attachment_ids=[upload.json["id"]]
    )
    assert sent.status == 201, sent.body
    blobs = Path(wedding.settings.blob_url)
    florist_blobs = files_under(blobs)
    assert florist_blobs
    # A copy of the rows as a backup would hold them, taken before the erasure.
    backup = await message_rows(wedding)

    done = await erase(
        wedding.hub.storage, wedding.hub.attachments, wedding.florist.org_id, audit_entry(wedding)
    )
    assert wedding.hub.key_watch is not None
    assert await wedding.hub.key_watch.check() == set(done.key_versions)
    assert done.messages == 3 and done.attachments == 1 and done.users == 2
    assert done.key_versions

    # Nothing of the florist's opens with the keys as they now are, in the live rows or in the
    # backup's; everyone else's does.
    ring = await fresh_ring(wedding)
    for row in [*backup, *await message_rows(wedding)]:
        mine = row["sender_org_id"] == wedding.florist.org_id
        assert opens(ring, row) is not mine, row["id"]
    for row in backup:
        if row["sender_org_id"] == wedding.florist.org_id:
            with pytest.raises(KeyDestroyed):
                ring.open_message(
                    row["thread_id"],
                    Sealed(
                        bytes(row["body_ciphertext"]), bytes(row["body_nonce"]), row["key_version"]
                    ),
                )
    destroyed = [
        r for r in await key_rows(wedding) if r["organization_id"] == wedding.florist.org_id
    ]
    assert destroyed and all(
        bytes(r["wrapped_key"]) == b"" and r["destroyed_at"] is not None for r in destroyed
    )

    # What readers see: the erased organization's messages, unreadable and named as erased.
    page = await wedding.rest.call("GET", f"/threads/{wedding.thread.id}", wedding.dj)
    assert page.status == 200, page.body
    shown = [(m["sender_name"], m["body"], m["erased"]) for m in page.json["messages"]]
    assert shown == [
        ("Paula Planner", "Welcome, everyone", False),
        ("Erased user", "", True),
        ("Erased user", "", True),
        ("Dee Jay", "Sound check at 2", False),
        ("Erased user", "", True),
    ]
    assert all(m["metadata"] == {} for m in page.json["messages"] if m["erased"])
    # Its files are gone from the store and the rows.
    assert not florist_blobs & files_under(blobs)
    download = await wedding.rest.call("GET", f"/attachments/{upload.json['id']}", wedding.dj)
    assert download.status == 404
    # Its people can no longer come back as themselves.
    refused = await wedding.rest.call("GET", "/me", wedding.florist)
    assert refused.status == 401 and "was erased" in refused.body.decode()
    try:
        async with hub_client.connect(wedding.hub.ws_url, wedding.florist_admin.token) as admin:
            await admin.join(wedding.thread.id)
    except BaseException as exc:  # raised through the client's nursery
        refusal = exc
        while isinstance(refusal, BaseExceptionGroup) and len(refusal.exceptions) == 1:
            refusal = refusal.exceptions[0]
        assert isinstance(refusal, hub_client.HubClientError), repr(exc)
        assert refusal.code == "unauthorized" and "was erased" in str(refusal)
    else:
        raise AssertionError("an erased organization's token opened a socket")
    names = await wedding.rows(
        "SELECT name FROM organizations WHERE id = $1", wedding.florist.org_id
    )
    assert names == [{"name": "Erased organization"}]
    [row] = await wedding.rows(
        "SELECT actor_user_id, details FROM vendor_communication_audit "
        "WHERE action = 'privacy.erase_organization'"
    )
    assert row["details"]["messages"] == 3 and row["details"]["via"] == "test"
    assert "4417" not in str(row["details"])

    again = await wedding.rest.call("GET", f"/threads/{wedding.thread.id}", wedding.planner)
    assert [m["body"] for m in again.json["messages"] if not m["erased"]] == [
        "Welcome, everyone",
        "Sound check at 2",
    ]


async def test_a_node_that_did_not_erase_forgets_the_keys_at_its_next_check(wedding: Wedding):
    await wedding.post(wedding.florist, "The gate code is 4417")
    first = await wedding.rest.call("GET", f"/threads/{wedding.thread.id}", wedding.dj)
    assert first.json["messages"][0]["body"] == "The gate code is 4417"  # opened, in memory now

    closed: list[int | None] = []
    try:
        async with hub_client.connect(wedding.hub.ws_url, wedding.florist.token) as florist:
            await florist.join(wedding.thread.id)
            # Erased by another process (as `hub erase org` is), on the same database.
            async with open_storage(wedding.settings) as elsewhere:
                await erase(elsewhere, None, wedding.florist.org_id, audit_entry(wedding))
            assert wedding.hub.key_watch is not None
            assert await wedding.hub.key_watch.check()
            with trio.fail_after(10):
                while not florist.close_codes:  # noqa: ASYNC110 (the client's own record)
                    await trio.sleep(0.02)
    except BaseException as exc:  # the client ends: its socket was closed as unauthorized
        if not florist.close_codes:
            raise
        closed = list(florist.close_codes)
        del exc
    assert closed == [protocol.CLOSE_UNAUTHORIZED]
    page = await wedding.rest.call("GET", f"/threads/{wedding.thread.id}", wedding.dj)
    [message] = page.json["messages"]
    assert (message["body"], message["erased"]) == ("", True)
    refused = await wedding.post(wedding.planner, "still here")
    assert refused.status == 201  # other organizations carry on


def test_hub_erase_org_needs_yes_and_says_what_it_did(tmp_path):
    """The CLI, in a process of its own, on a database seeded here."""
    import trio

    from hub.config import load_settings
    from hub.storage.identities import upsert_identity

    env = {"HUB_VAR_DIR": str(tmp_path / "var"), "HUB_DATABASE_URL": f"sqlite:///{tmp_path}/hub.db"}
    environ = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")} | env

    def hub(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "hub", *args],
            cwd=tmp_path,
            env=environ,
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert hub("migrate").returncode == 0
    settings = load_settings(env)
    import uuid

    org = uuid.uuid4()

    async def seed() -> None:
        async with open_storage(settings) as storage:
            await storage.write(
                lambda now: upsert_identity(
                    user_id=uuid.uuid4(),
                    organization_id=org,
                    username="flora",
                    display_name="Flora",
                    role="owner",
                    now=now,
                )
            )
            await storage.sealing.ring_for(org)

    trio.run(seed)
    unconfirmed = hub("erase", "org", str(org))
    assert unconfirmed.returncode == 2 and "--yes" in unconfirmed.stderr
    done = hub("erase", "org", str(org), "--yes")
    assert done.returncode == 0, done.stderr
    assert f"erased organization {org}" in done.stdout and "1 users pseudonymised" in done.stdout
    again = hub("erase", "org", str(org), "--yes")
    assert again.returncode != 0 and "erased already" in again.stderr
