"""Exports (GDPR articles 15 and 20) as a caller gets them: `GET /me/export` and
`GET /me/organization/export`, zip archives read back and checked against the database."""

from __future__ import annotations

import hashlib
import json
import uuid
import zipfile

from hub.storage.groups import create_client
from tests.attachments.conftest import Rest
from tests.factories import new_member
from tests.http.wire import Connection, request
from tests.privacy.conftest import WEBHOOK_SECRET, World, archive


def load(zipped: zipfile.ZipFile, name: str):
    return json.loads(zipped.read(name))


async def test_a_users_export_holds_everything_about_them(world: World):
    zipped = archive(await world.export(world.flora))

    assert zipped.testzip() is None
    manifest = load(zipped, "manifest.json")
    assert manifest["subject"] == {"type": "user", "id": str(world.flora.user_id)}
    assert manifest["format_version"] == 1
    assert "messages.json" in manifest["files"]
    profile = load(zipped, "profile.json")
    assert profile["user"]["display_name"] == "Flora Green"
    assert profile["user"]["role"] == "vendor"
    assert profile["organization"]["name"] == "Bloom & Co"

    messages = load(zipped, "messages.json")
    assert {m["body"]: m["seq"] for m in messages} == world.sent
    by_body = {m["body"]: m for m in messages}
    mention = by_body["Peonies for @Paula Planner, blush"]
    assert mention["metadata"]["colour"] == "blush"
    assert [m["id"] for m in mention["metadata"]["mentions"]["users"]] == [str(world.paula.user_id)]
    assert mention["thread_title"] == "Ceremony timeline"
    assert mention["group_name"] == "Rivera & Chen"
    change = by_body["Delivery moves to 2pm"]
    assert (change["kind"], change["requires_ack"]) == ("change", True)
    sent_file = by_body["The bouquet"]
    assert [a["id"] for a in sent_file["metadata"]["attachments"]] == [world.photo_id]
    assert manifest["counts"]["messages.json"] == 3

    threads = {t["id"]: t for t in load(zipped, "threads.json")}
    assert {t["title"] for t in threads.values()} == {"Ceremony timeline", "Flower delivery"}
    assert {t["group_name"] for t in threads.values()} == {"Rivera & Chen", "Smith & Jones"}

    receipts = load(zipped, "receipts.json")
    assert [(r["thread_id"], r["last_read_seq"]) for r in receipts] == [
        (str(world.threads[0].id), 2)
    ]
    presence = load(zipped, "presence.json")
    assert [(p["thread_id"], p["status"]) for p in presence] == [(str(world.threads[1].id), "busy")]
    (prefs,) = load(zipped, "preferences.json")
    assert (prefs["quiet_hours_start"], prefs["time_zone"]) == ("22:00", "Europe/Madrid")
    assert [m["thread_id"] for m in load(zipped, "mutes.json")] == [str(world.threads[1].id)]
    notifications = load(zipped, "notifications.json")
    # Paula's request to confirm, which mentioned Flora too: one notification of it.
    assert [(n["thread_id"], n["seq"], n["reason"]) for n in notifications] == [
        (str(world.threads[0].id), 1, "ack_request")
    ]
    assert all(n["user_id"] == str(world.flora.user_id) for n in notifications)
    (ack,) = load(zipped, "acknowledgements.json")
    assert (ack["thread_id"], ack["seq"]) == (str(world.threads[0].id), 1)

    (listed,) = load(zipped, "attachments.json")
    assert listed["id"] == world.photo_id
    assert listed["message_seq"] == world.sent["The bouquet"]
    assert listed["sha256"] == hashlib.sha256(world.photo).hexdigest()
    assert listed["path"].startswith(f"attachments/{world.photo_id}/")
    assert "/.." not in listed["path"] and listed["path"].count("/") == 2
    contents = zipped.read(listed["path"])
    assert contents == world.photo
    assert zipped.getinfo(listed["path"]).compress_type == zipfile.ZIP_STORED

    audit = load(zipped, "audit.json")
    actions = {row["action"] for row in audit}
    assert {"attachment.upload", "preferences.update"} <= actions
    assert all(
        row["actor_user_id"] == str(world.flora.user_id)
        or (row["target_type"] == "user" and row["target_id"] == str(world.flora.user_id))
        for row in audit
    )


async def test_a_users_export_holds_no_one_elses_messages_or_secrets(world: World):
    reply = await world.export(world.flora)
    zipped = archive(reply)

    everything = b"".join(zipped.read(name) for name in zipped.namelist())
    for body in world.others:
        assert body.encode() not in everything
    assert WEBHOOK_SECRET.encode() not in everything
    assert world.eve.token.encode() not in everything
    assert world.flora.token.encode() not in everything
    assert "webhooks.json" not in zipped.namelist()
    messages = load(zipped, "messages.json")
    assert {m["sender_user_id"] for m in messages} == {str(world.flora.user_id)}


async def test_an_export_is_audited_with_its_counts_and_no_content(world: World):
    await world.export(world.flora)

    (row,) = await world.rows(
        "SELECT actor_user_id, target_type, target_id, details FROM vendor_communication_audit "
        "WHERE action = 'privacy.export'"
    )
    assert row["actor_user_id"] == world.flora.user_id
    assert (row["target_type"], row["target_id"]) == ("user", str(world.flora.user_id))
    assert row["details"]["counts"]["messages.json"] == 3
    assert row["details"]["counts"]["attachments.json"] == 1
    assert "Peonies" not in json.dumps(row["details"])


async def test_an_export_is_a_streamed_zip_download(world: World):
    connection = await Connection.open(world.rest.url)
    try:
        headers = [("Authorization", f"Bearer {world.flora.token}"), ("Content-Length", "0")]
        await connection.send(request("GET", "/api/vendor-connections/me/export", headers))
        answer = await connection.response(b"GET")
    finally:
        await connection.aclose()
    assert answer is not None and answer.status == 200
    assert answer.headers[b"content-type"] == b"application/zip"
    disposition = answer.headers[b"content-disposition"].decode()
    assert disposition.startswith(f'attachment; filename="hub-export-{world.flora.user_id}-')
    assert disposition.endswith('.zip"')
    # No length was known beforehand: the archive was sent in chunks as it was made.
    assert answer.headers.get(b"transfer-encoding") == b"chunked"
    assert b"content-length" not in answer.headers
    assert answer.body.startswith(b"PK\x03\x04")


async def test_a_user_with_nothing_gets_a_valid_nearly_empty_archive(world: World):
    newcomer = await new_member(world.hub.storage, world.settings, name="Nina New")

    zipped = archive(await world.export(newcomer))

    assert zipped.testzip() is None
    assert load(zipped, "messages.json") == []
    assert load(zipped, "attachments.json") == []
    assert load(zipped, "threads.json") == []
    counts = load(zipped, "manifest.json")["counts"]
    assert counts["messages.json"] == counts["receipts.json"] == 0
    assert not [name for name in zipped.namelist() if name.startswith("attachments/")]


async def test_an_organizations_owner_exports_its_users_and_webhooks_without_secrets(
    world: World,
):
    zipped = archive(await world.export(world.fern, "/me/organization/export"))

    assert zipped.testzip() is None
    assert load(zipped, "manifest.json")["subject"] == {
        "type": "organization",
        "id": str(world.flora.org_id),
    }
    assert load(zipped, "organization.json")["name"] == "Bloom & Co"
    users = {u["display_name"] for u in load(zipped, "users.json")}
    assert users == {"Flora Green", "Fern Owner"}
    messages = load(zipped, "messages.json")
    assert {m["body"] for m in messages} == set(world.sent)
    (webhook,) = load(zipped, "webhooks.json")
    assert webhook["url"] == "https://hooks.example/bloom"
    assert "secret_sealed" not in webhook and "secret" not in webhook
    everything = b"".join(zipped.read(name) for name in zipped.namelist())
    assert WEBHOOK_SECRET.encode() not in everything
    for body in world.others:
        assert body.encode() not in everything
    # Another organization's data never appears: Eve's organization, its group and thread.
    assert str(world.eve.org_id).encode() not in everything
    assert b"Elsewhere wedding" not in everything
    (listed,) = load(zipped, "attachments.json")
    assert zipped.read(listed["path"]) == world.photo


async def test_an_organization_exports_the_groups_it_owns_with_their_members(world: World):
    client_id = uuid.uuid4()
    await world.hub.storage.write(
        lambda now: create_client(
            client_id=client_id,
            organization_id=world.paula.org_id,
            partner_one_name="Ana Rivera",
            email="ana@example.com",
            now=now,
        )
    )
    zipped = archive(await world.export(world.paula, "/me/organization/export"))

    # The couples it keeps contact details of are its data too.
    (client,) = load(zipped, "clients.json")
    assert (client["id"], client["partner_one_name"], client["email"]) == (
        str(client_id),
        "Ana Rivera",
        "ana@example.com",
    )

    (group,) = load(zipped, "groups.json")
    assert group["name"] == "Rivera & Chen"
    members = {m["organization_name"] for m in load(zipped, "group_members.json")}
    assert members == {"Petal Planning", "Bloom & Co"}
    # Paula's organization has Paula's message, not Flora's.
    assert [m["body"] for m in load(zipped, "messages.json")] == [world.others[0]]


async def test_only_an_owner_may_export_the_organization(world: World):
    reply = await world.export(world.flora, "/me/organization/export")

    assert reply.status == 403
    assert reply.json["error"]["code"] == "forbidden"
    rows = await world.rows(
        "SELECT id FROM vendor_communication_audit WHERE action = 'privacy.export'"
    )
    assert rows == []


async def test_exports_have_a_rate_class_of_their_own(world: World, settings, tmp_path):
    import dataclasses

    from tests.realtime.conftest import hub_for

    tight = dataclasses.replace(settings, rate_export=(0.001, 1.0), ws_port=0, http_port=0)
    async with hub_for(tight) as running:
        rest = Rest(running)
        first = await rest.call("GET", "/me/export", world.flora)
        second = await rest.call("GET", "/me/export", world.flora)
        other_reads = await rest.call("GET", "/me", world.flora)
    assert first.status == 200
    assert second.status == 429
    assert second.header("Retry-After") is not None
    assert other_reads.status == 200


async def test_a_deleted_message_is_exported_as_a_tombstone_without_its_text(world: World):
    from hub.storage.sql import execute

    seq = world.sent["Delivery moves to 2pm"]

    def tombstone(now):
        yield execute(
            "UPDATE thread_messages SET deleted_at = $3, body_ciphertext = $4 "
            "WHERE thread_id = $1 AND seq = $2",
            world.threads[0].id,
            seq,
            now,
            b"\x00" * 16,
        )

    await world.hub.storage.write(tombstone)
    messages = load(archive(await world.export(world.flora)), "messages.json")

    ceremony = str(world.threads[0].id)
    (gone,) = [m for m in messages if m["seq"] == seq and m["thread_id"] == ceremony]
    assert gone["deleted_at"] is not None
    assert (gone["body"], gone["metadata"]) == (None, None)
    assert uuid.UUID(gone["thread_id"]) == world.threads[0].id
