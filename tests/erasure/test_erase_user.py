"""Erasing a user over REST and the CLI, on both backends: what is left of them in the database
and the blob store (nothing but tombstones and a pseudonymised profile), what others still read
(their messages, the sender "Erased user"), what live subscribers are told, the audit row
(never the content), that their tokens are refused on both doors, and who may erase whom."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from uuid import UUID

import trio

from hub import client as hub_client
from hub import protocol
from hub.privacy.erasure import erase_user
from hub.storage.records import AuditEntry
from tests.attachments.conftest import png
from tests.notifications.conftest import Wedding
from tests.realtime.helpers import close_code, raw_socket, receive

SAID = ("Peonies at 10, call me on 07700 900123", "The arch is ready", "Invoice attached")


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


async def florist_leaves_traces(wedding: Wedding) -> dict:
    """The florist talks, uploads (one file sent, one never), reads, is present, sets
    preferences and mutes; the DJ talks too. What the test needs to check afterwards."""
    florist, thread = wedding.florist, wedding.thread
    sent = await wedding.rest.upload(
        florist, thread.id, png(), filename="arch.png", content_type="image/png"
    )
    unsent = await wedding.rest.upload(
        florist, thread.id, png(8, 8), filename="draft.png", content_type="image/png"
    )
    assert sent.status == 201 and unsent.status == 201, (sent.body, unsent.body)
    seqs = [(await wedding.post(florist, SAID[0])).json["seq"]]
    seqs.append((await wedding.post(florist, SAID[1])).json["seq"])
    attached = await wedding.post(
        florist, SAID[2], kind="attachment", attachment_ids=[sent.json["id"]]
    )
    seqs.append(attached.json["seq"])
    dj_seq = (await wedding.post(wedding.dj, "Sound check at 2, @Flora Green")).json["seq"]
    async with hub_client.connect(wedding.hub.ws_url, florist.token) as socket:
        await socket.join(thread.id)
        await socket.mark_read(thread.id, dj_seq)
        await socket.set_presence("busy")
    prefs = await wedding.rest.call(
        "PUT", "/me/notification-preferences", florist, json_body={"urgent_only": True}
    )
    muted = await wedding.rest.call(
        "PUT", f"/threads/{thread.id}/mute", florist, json_body={"muted": True}
    )
    assert prefs.status == 200 and muted.status == 200, (prefs.body, muted.body)
    return {"seqs": seqs, "dj_seq": dj_seq}


async def erase(wedding: Wedding, caller, target=None, confirm="erase"):
    path = "/me/erase" if target is None else f"/users/{target.user_id}/erase"
    return await wedding.rest.call("POST", path, caller, json_body={"confirm": confirm})


async def test_erasing_oneself_leaves_nothing_of_theirs_but_tombstones(wedding: Wedding):
    traces = await florist_leaves_traces(wedding)
    blobs_before = files_under(Path(wedding.settings.blob_url))
    assert len(blobs_before) >= 2
    florist = wedding.florist
    async with (
        hub_client.connect(wedding.hub.ws_url, wedding.planner.token) as planner,
        raw_socket(wedding.hub.ws_url, florist.token) as own,
    ):
        assert isinstance(await receive(own), protocol.Ready)
        await planner.join(wedding.thread.id)
        reply = await erase(wedding, florist)
        assert reply.status == 200, reply.body
        deleted = [await planner.next_event(protocol.MessageDeleted) for _ in traces["seqs"]]
        # Their own open socket is closed: its token no longer opens anything.
        assert await close_code(own) == protocol.CLOSE_UNAUTHORIZED

    assert sorted(e.seq for e in deleted) == traces["seqs"]
    assert len({e.change_no for e in deleted}) == len(deleted)
    assert reply.json["counts"]["messages"] == 3
    assert reply.json["counts"]["uploads"] == 1
    assert reply.json["username"].startswith("erased-")

    # The database: tombstones without a byte of what they said, and nothing else of theirs.
    rows = await wedding.rows(
        "SELECT body_ciphertext, body_nonce, deleted_at, deleted_by FROM thread_messages "
        "WHERE sender_user_id = $1",
        florist.user_id,
    )
    assert len(rows) == 3
    assert all(bytes(r["body_ciphertext"]) == b"" and bytes(r["body_nonce"]) == b"" for r in rows)
    assert all(r["deleted_at"] is not None and r["deleted_by"] == florist.user_id for r in rows)
    for table, column in (
        ("message_attachments", "uploader_user_id"),
        ("message_read_receipts", "user_id"),
        ("thread_presence", "user_id"),
        ("vendor_notification_preferences", "user_id"),
        ("thread_mutes", "user_id"),
        ("user_notifications", "user_id"),
    ):
        found = await wedding.rows(
            f"SELECT count(*) AS n FROM {table} WHERE {column} = $1",
            florist.user_id,
        )
        assert found == [{"n": 0}], table
    assert not (blobs_before & files_under(Path(wedding.settings.blob_url)))
    [profile] = await wedding.rows(
        "SELECT display_name, username, email, erased_at, erased_by FROM user_profiles "
        "WHERE id = $1",
        florist.user_id,
    )
    assert profile["display_name"] == "Erased user" and profile["email"] is None
    assert profile["username"] == reply.json["username"]
    assert profile["erased_at"] is not None and profile["erased_by"] == florist.user_id

    # The audit: one row saying who and how many, never what; their addresses cleared.
    [row] = await wedding.rows(
        "SELECT actor_user_id, target_id, ip, user_agent, details FROM vendor_communication_audit "
        "WHERE action = 'privacy.erase_user'"
    )
    assert row["actor_user_id"] == florist.user_id and row["target_id"] == str(florist.user_id)
    assert row["ip"] is None and row["details"]["via"] == "api"
    assert row["details"]["messages"] == 3
    text = json.dumps(await wedding.rows("SELECT * FROM vendor_communication_audit"), default=str)
    assert not any(said in text for said in SAID) and "Flora" not in text
    addressed = await wedding.rows(
        "SELECT count(*) AS n FROM vendor_communication_audit WHERE actor_user_id = $1 "
        "AND (ip IS NOT NULL OR user_agent IS NOT NULL)",
        florist.user_id,
    )
    assert addressed == [{"n": 0}]


async def test_others_still_read_their_messages_with_the_sender_erased(wedding: Wedding):
    traces = await florist_leaves_traces(wedding)
    assert (await erase(wedding, wedding.florist)).status == 200

    page = await wedding.rest.call("GET", f"/threads/{wedding.thread.id}", wedding.dj)
    by_seq = {m["seq"]: m for m in page.json["messages"]}
    assert by_seq[traces["dj_seq"]]["body"] == "Sound check at 2, @Flora Green"
    assert by_seq[traces["dj_seq"]]["sender_name"] == "Dee Jay"
    for seq in traces["seqs"]:
        assert by_seq[seq]["body"] == "" and by_seq[seq]["deleted_at"] is not None
        assert by_seq[seq]["sender_name"] == "Erased user"
    # The receipts others see no longer include theirs.
    assert wedding.florist.user_id not in {
        UUID(r["user_id"]) for r in page.json.get("read_receipts", [])
    }

    async with hub_client.connect(wedding.hub.ws_url, wedding.planner.token) as planner:
        await planner.join(wedding.thread.id, since_seq=0)
        replayed = await planner.drain(wedding.thread.id, traces["dj_seq"])
    names = {m.seq: m.sender_name for m in replayed}
    assert {names[seq] for seq in traces["seqs"]} == {"Erased user"}
    assert names[traces["dj_seq"]] == "Dee Jay"


async def test_an_erased_users_tokens_are_refused_on_both_doors(wedding: Wedding):
    assert (await erase(wedding, wedding.florist)).status == 200

    reply = await wedding.rest.call("GET", "/me", wedding.florist)
    assert reply.status == 401
    assert "this user was erased" in reply.json["error"]["message"]
    async with raw_socket(wedding.hub.ws_url, wedding.florist.token) as ws:
        error = await receive(ws)
        assert error.code == "unauthorized" and "this user was erased" in error.message
        assert await close_code(ws) == protocol.CLOSE_UNAUTHORIZED
    # Their name did not come back from the token.
    [profile] = await wedding.rows(
        "SELECT display_name FROM user_profiles WHERE id = $1", wedding.florist.user_id
    )
    assert profile["display_name"] == "Erased user"


async def test_who_may_erase_whom(wedding: Wedding):
    # Another organization's owner or vendor: the user does not exist for them.
    assert (await erase(wedding, wedding.planner, wedding.florist)).status == 404
    assert (await erase(wedding, wedding.dj, wedding.florist)).status == 404
    # A plain vendor does not erase a colleague.
    refused = await erase(wedding, wedding.florist, wedding.florist_admin)
    assert refused.status == 403 and "may not erase" in refused.body.decode()
    # Anyone may have themselves erased, whatever their role.
    themselves = await erase(wedding, wedding.florist_admin, wedding.florist_admin)
    assert themselves.status == 200
    unconfirmed = await erase(wedding, wedding.dj, confirm="yes")
    assert unconfirmed.status == 422
    # The organization's admin erases its vendor.
    admin = await new_admin(wedding)
    allowed = await erase(wedding, admin, wedding.florist)
    assert allowed.status == 200, allowed.body
    [row] = await wedding.rows(
        "SELECT erased_by FROM user_profiles WHERE id = $1", wedding.florist.user_id
    )
    assert row["erased_by"] == admin.user_id
    assert (await erase(wedding, admin, wedding.dj)).status == 404


async def test_an_admin_does_not_erase_an_owner(wedding: Wedding):
    from tests.factories import new_member

    owner = await new_member(
        wedding.hub.storage, wedding.settings, org_id=wedding.florist.org_id, role="owner"
    )
    refused = await erase(wedding, wedding.florist_admin, owner)
    assert refused.status == 403 and "only an owner" in refused.body.decode()
    assert (await erase(wedding, owner, wedding.florist_admin)).status == 200


async def new_admin(wedding: Wedding):
    from tests.factories import new_member

    return await new_member(
        wedding.hub.storage, wedding.settings, org_id=wedding.florist.org_id, role="admin"
    )


class Recorded:
    """A router that keeps what it was told (the erasure's frames, in order)."""

    def __init__(self) -> None:
        self.changed: list[tuple[UUID, int]] = []
        self.erased: list[UUID] = []

    def message_changed(self, thread_id: UUID, frame: bytes, change_no: int) -> None:
        self.changed.append((thread_id, change_no))

    def user_erased(self, user_id: UUID) -> None:
        self.erased.append(user_id)


async def test_many_messages_are_erased_in_bounded_batches(wedding: Wedding):
    for n in range(7):
        assert (await wedding.post(wedding.dj, f"note {n}")).status == 201
    router = Recorded()
    removed: list[str] = []

    async def remove_blobs(keys):
        removed.extend(keys)

    report = await erase_user(
        wedding.hub.storage,
        router,  # type: ignore[arg-type]  (only what an erasure calls)
        wedding.dj.user_id,
        AuditEntry(action="privacy.erase_user", target_type="user", details={"via": "test"}),
        erased_by=None,
        remove_blobs=remove_blobs,
        batch=3,
    )
    assert report.messages == 7
    assert [n for _, n in router.changed] == list(range(1, 8))
    assert router.erased == [wedding.dj.user_id] * 2
    left = await wedding.rows(
        "SELECT count(*) AS n FROM thread_messages WHERE sender_user_id = $1 "
        "AND deleted_at IS NULL",
        wedding.dj.user_id,
    )
    assert left == [{"n": 0}]


def hub_command(wedding: Wedding, *args: str) -> subprocess.CompletedProcess:
    settings = wedding.settings
    environ = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    environ.update(
        HUB_DATABASE_URL=settings.database_url,
        HUB_ENCRYPTION_KEY=base64.b64encode(settings.encryption_key).decode(),
        HUB_JWT_SECRET=settings.jwt_secret,
        HUB_BLOB_URL=settings.blob_url,
    )
    return subprocess.run(
        [sys.executable, "-m", "hub", *args],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_hub_erase_user_prints_the_counts_and_is_audited(wedding: Wedding):
    await florist_leaves_traces(wedding)

    result = await trio.to_thread.run_sync(
        hub_command, wedding, "erase", "user", str(wedding.florist.user_id)
    )

    assert result.returncode == 0, result.stderr
    assert f"erased user {wedding.florist.user_id} (now erased-" in result.stdout
    assert "3 messages" in result.stdout and "1 uploads" in result.stdout
    [row] = await wedding.rows(
        "SELECT actor_user_id, target_id, details FROM vendor_communication_audit "
        "WHERE action = 'privacy.erase_user'"
    )
    assert row["actor_user_id"] is None and row["target_id"] == str(wedding.florist.user_id)
    assert row["details"]["via"] == "cli" and row["details"]["messages"] == 3
    [profile] = await wedding.rows(
        "SELECT display_name, erased_by FROM user_profiles WHERE id = $1", wedding.florist.user_id
    )
    assert profile == {"display_name": "Erased user", "erased_by": None}

    unknown = await trio.to_thread.run_sync(
        hub_command, wedding, "erase", "user", "00000000-0000-4000-8000-000000000000"
    )
    assert unknown.returncode == 2 and "not found" in unknown.stderr
