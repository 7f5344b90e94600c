"""Retention anchored to the wedding: a group is archived `archive_days_after_wedding` days after
its wedding and its messages and files are purged `retention_days_after_wedding` days after it
(the last activity anchors a group without a date); a legal hold stops both; audit rows older
than HUB_AUDIT_RETENTION_DAYS go; a client rejoining a purged thread is told `recovered: false`.
Passes run at moments the test chooses, on both backends."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest

from hub import client as hub_client
from hub.storage.audit import insert_audit
from hub.storage.groups import create_client
from hub.storage.records import AuditEntry
from hub.storage.sql import Op, execute
from tests.attachments.conftest import png
from tests.retention.conftest import Wedding

WEDDING = date(2031, 6, 14)
WEDDING_START = datetime(2031, 6, 14, tzinfo=UTC)
SECOND = timedelta(seconds=1)


async def test_a_wedding_is_archived_on_its_archive_day_and_not_a_moment_before(
    wedding: Wedding,
):
    await wedding.set_wedding_date(WEDDING)
    await wedding.post(wedding.planner, "Tent at 3pm")
    archive_day = WEDDING_START + timedelta(days=30)

    early = await wedding.run_pass(archive_day - SECOND)
    assert (early.archived, early.purged) == ([], [])
    assert (await wedding.group_row())["status"] == "active"

    report = await wedding.run_pass(archive_day)
    assert report.archived == [wedding.group.id] and report.purged == []
    group = await wedding.group_row()
    assert group["status"] == "archived" and group["purged_at"] is None
    [thread] = await wedding.rows(
        "SELECT status FROM messaging_threads WHERE id = $1", wedding.thread.id
    )
    assert thread["status"] == "archived"
    assert await wedding.count("thread_messages") == 1  # archived, not deleted
    [entry] = await wedding.audit_of("group.retention_archive")
    assert (entry["actor_user_id"], entry["actor_org_id"]) == (None, None)
    assert entry["group_id"] == wedding.group.id
    assert entry["details"]["anchor"] == "wedding_date"
    # Posting to an archived wedding is refused.
    refused = await wedding.rest.call(
        "POST", f"/threads/{wedding.thread.id}", wedding.florist, json_body={"body": "late"}
    )
    assert refused.status in (409, 422)
    # A second pass finds nothing more to do until the purge.
    again = await wedding.run_pass(archive_day + timedelta(days=1))
    assert (again.archived, again.purged) == ([], [])


async def test_a_weddings_messages_and_files_are_purged_on_its_retention_day(wedding: Wedding):
    await wedding.set_wedding_date(WEDDING)
    # The couple's contact details, kept for the wedding.
    client_id = uuid.uuid4()

    def couple(now) -> Op[None]:
        yield from create_client(
            client_id=client_id,
            organization_id=wedding.planner.org_id,
            partner_one_name="Ana Rivera",
            partner_two_name="Lee Chen",
            email="ana@example.com",
            phone="+34 600 000 000",
            now=now,
        )
        yield execute(
            "UPDATE vendor_connection_groups SET client_id = $2 WHERE id = $1",
            wedding.group.id,
            client_id,
        )

    await wedding.hub.storage.write(couple)
    first = await wedding.post(wedding.planner, "Peonies or roses?")
    await wedding.post(wedding.florist, "Roses", reply_to=first.json["id"])
    # A change of plan: requests to acknowledge, a mention's notifications and deliveries.
    await wedding.post(wedding.planner, "@Flora Green ceremony moves to 4pm", kind="change")
    upload = await wedding.rest.upload(
        wedding.florist, wedding.thread.id, png(), filename="arch.png", content_type="image/png"
    )
    assert upload.status == 201, upload.body
    await wedding.post(
        wedding.florist, "The arch", kind="attachment", attachment_ids=[upload.json["id"]]
    )
    unsent = await wedding.rest.upload(
        wedding.planner, wedding.thread.id, png(8, 8), filename="draft.png", content_type=None
    )
    assert unsent.status == 201
    ack = await wedding.rest.call(
        "POST", f"/threads/{wedding.thread.id}/messages/3/ack", wedding.florist
    )
    assert ack.status in (200, 201), ack.body
    blobs_before = wedding.blob_files()
    assert len(blobs_before) == 4  # two files, each with its thumbnail
    assert await wedding.count("user_notifications") > 0
    assert await wedding.count("ack_requests") > 0
    purge_day = WEDDING_START + timedelta(days=365)

    early = await wedding.run_pass(purge_day - SECOND)
    assert early.archived == [wedding.group.id] and early.purged == []
    assert await wedding.count("thread_messages") == 4

    report = await wedding.run_pass(purge_day, batch=2)  # in several transactions
    assert report.purged == [wedding.group.id]
    assert (report.messages_deleted, report.attachments_deleted) == (4, 2)
    for table in (
        "thread_messages",
        "message_attachments",
        "user_notifications",
        "notification_deliveries",
        "ack_requests",
        "message_acknowledgements",
    ):
        assert await wedding.count(table) == 0, table
    assert wedding.blob_files() == set()
    # The thread stays, with its seqs counted: history says it is gone.
    [thread] = await wedding.rows(
        "SELECT last_seq, status FROM messaging_threads WHERE id = $1", wedding.thread.id
    )
    assert (thread["last_seq"], thread["status"]) == (4, "archived")
    group = await wedding.group_row()
    assert group["status"] == "archived" and group["purged_at"] is not None
    assert await wedding.rows("SELECT id FROM clients WHERE id = $1", client_id) == []
    [link] = await wedding.rows(
        "SELECT client_id FROM vendor_connection_groups WHERE id = $1", wedding.group.id
    )
    assert link["client_id"] is None
    [entry] = await wedding.audit_of("group.retention_purge")
    assert entry["actor_user_id"] is None
    assert entry["details"] == {"messages": 4, "attachments": 2, "notifications": 1}
    audit_text = json.dumps(
        [
            row["details"]
            for row in await wedding.rows("SELECT details FROM vendor_communication_audit")
        ],
        default=str,
    )
    for content in ("Peonies", "Roses", "4pm", "arch.png", "The arch"):
        assert content not in audit_text
    # Reading it over REST: no messages, and the retention says when it went.
    page = await wedding.rest.call("GET", f"/threads/{wedding.thread.id}", wedding.florist)
    assert page.status == 200 and page.json["messages"] == []
    shown = await wedding.rest.call("GET", f"/groups/{wedding.group.id}/retention", wedding.planner)
    assert shown.json["purged_at"] is not None
    assert shown.json["may_change"] is False  # nothing left to keep or hold
    # Nothing more to do afterwards.
    again = await wedding.run_pass(purge_day + timedelta(days=30))
    assert (again.archived, again.purged) == ([], [])


async def test_a_client_rejoining_a_purged_thread_is_told_its_history_was_not_recovered(
    wedding: Wedding,
):
    await wedding.set_wedding_date(WEDDING)
    for i in range(3):
        await wedding.post(wedding.planner, f"note {i}")
    await wedding.run_pass(WEDDING_START + timedelta(days=365))

    async with hub_client.connect(wedding.hub.ws_url, wedding.florist.token) as florist:
        ack = await florist.join(wedding.thread.id, since_seq=1)
        caught_up = await florist.join(wedding.thread.id, since_seq=3)

    assert (ack.recovered, ack.last_seq) == (False, 3)
    # A client that had everything missed nothing.
    assert caught_up.recovered is True


async def test_a_group_without_a_wedding_date_counts_from_its_last_message(wedding: Wedding):
    await wedding.post(wedding.planner, "We will pick a date soon")
    [thread] = await wedding.rows(
        "SELECT last_message_at FROM messaging_threads WHERE id = $1", wedding.thread.id
    )
    last = thread["last_message_at"]
    last = datetime.fromisoformat(last) if isinstance(last, str) else last
    last = last if last.tzinfo else last.replace(tzinfo=UTC)
    shown = await wedding.rest.call("GET", f"/groups/{wedding.group.id}/retention", wedding.florist)
    assert shown.json["anchor"] == "last_activity"
    assert datetime.fromisoformat(shown.json["anchored_at"]) == last

    assert (await wedding.run_pass(last + timedelta(days=30) - SECOND)).archived == []
    assert (await wedding.run_pass(last + timedelta(days=30))).archived == [wedding.group.id]
    assert (await wedding.run_pass(last + timedelta(days=365) - SECOND)).purged == []
    assert (await wedding.run_pass(last + timedelta(days=365))).purged == [wedding.group.id]
    assert await wedding.count("thread_messages") == 0


async def test_a_legal_hold_stops_archive_and_purge_until_it_is_lifted(wedding: Wedding):
    await wedding.set_wedding_date(WEDDING)
    await wedding.post(wedding.planner, "Invoice attached")
    hold_path = f"/groups/{wedding.group.id}/legal-hold"
    refused = await wedding.rest.call(
        "PUT", hold_path, wedding.florist_admin, json_body={"reason": "dispute"}
    )
    assert refused.status == 403  # an admin, but not of the organization that owns it
    held = await wedding.rest.call(
        "PUT", hold_path, wedding.planner, json_body={"reason": "Claim 2031-118 pending"}
    )
    assert held.status == 200, held.body
    assert held.json["legal_hold"]["reason"] == "Claim 2031-118 pending"
    assert held.json["legal_hold"]["by"] == str(wedding.planner.user_id)
    # Every member sees the hold.
    seen = await wedding.rest.call("GET", f"/groups/{wedding.group.id}/retention", wedding.florist)
    assert seen.json["legal_hold"]["reason"] == "Claim 2031-118 pending"

    years_later = WEDDING_START + timedelta(days=800)
    report = await wedding.run_pass(years_later)
    assert (report.archived, report.purged) == ([], [])
    assert (await wedding.group_row())["status"] == "active"
    assert await wedding.count("thread_messages") == 1

    lifted = await wedding.rest.call("DELETE", hold_path, wedding.planner)
    assert lifted.status == 200 and lifted.json["legal_hold"] is None
    report = await wedding.run_pass(years_later)
    assert report.purged == [wedding.group.id]
    assert await wedding.count("thread_messages") == 0
    [placed] = await wedding.audit_of("group.legal_hold_set")
    assert placed["actor_user_id"] == wedding.planner.user_id
    assert placed["details"]["reason"] == "Claim 2031-118 pending"
    assert len(await wedding.audit_of("group.legal_hold_clear")) == 1


async def test_a_hold_placed_on_an_archived_wedding_stops_its_purge(wedding: Wedding):
    await wedding.set_wedding_date(WEDDING)
    await wedding.post(wedding.planner, "Final invoice")
    await wedding.run_pass(WEDDING_START + timedelta(days=31))
    assert (await wedding.group_row())["status"] == "archived"
    held = await wedding.rest.call(
        "PUT",
        f"/groups/{wedding.group.id}/legal-hold",
        wedding.planner,
        json_body={"reason": "Audit"},
    )
    assert held.status == 200, held.body

    report = await wedding.run_pass(WEDDING_START + timedelta(days=400))
    assert report.purged == []
    assert await wedding.count("thread_messages") == 1


async def test_audit_rows_past_their_retention_go_and_newer_ones_stay(wedding: Wedding):
    now = datetime(2033, 1, 1, tzinfo=UTC)
    cut = now - timedelta(days=wedding.settings.audit_retention_days)

    def entry(action: str) -> AuditEntry:
        return AuditEntry(action=action, target_type="group", group_id=wedding.group.id)

    for action, at in (("old.one", cut - timedelta(days=1)), ("old.two", cut - SECOND)):
        await wedding.hub.storage.write(lambda _, a=action, t=at: insert_audit([entry(a)], t))
    await wedding.hub.storage.write(lambda _: insert_audit([entry("kept")], cut))
    await wedding.hub.storage.write(lambda _: insert_audit([entry("recent")], now))

    report = await wedding.run_pass(now, batch=1)  # one row a transaction
    assert report.audit_rows_deleted == 2
    actions = {
        r["action"] for r in await wedding.rows("SELECT action FROM vendor_communication_audit")
    }
    assert {"kept", "recent"} <= actions
    assert not actions & {"old.one", "old.two"}
    [purge] = await wedding.audit_of("audit.retention_purge")
    assert purge["details"]["rows"] == 2


async def test_the_retention_is_read_by_members_and_set_by_the_owners_admins(wedding: Wedding):
    await wedding.set_wedding_date(WEDDING)
    path = f"/groups/{wedding.group.id}/retention"
    shown = await wedding.rest.call("GET", path, wedding.florist)
    assert shown.status == 200
    assert {
        k: shown.json[k]
        for k in (
            "retention_days_after_wedding",
            "archive_days_after_wedding",
            "anchor",
            "legal_hold",
            "purged_at",
            "may_change",
        )
    } == {
        "retention_days_after_wedding": 365,
        "archive_days_after_wedding": 30,
        "anchor": "wedding_date",
        "legal_hold": None,
        "purged_at": None,
        "may_change": False,  # the florist's organization does not own the wedding
    }
    owner = await wedding.rest.call("GET", path, wedding.planner)
    assert owner.json["may_change"] is True
    assert datetime.fromisoformat(shown.json["archive_due"]) == WEDDING_START + timedelta(days=30)
    assert datetime.fromisoformat(shown.json["purge_due"]) == WEDDING_START + timedelta(days=365)

    for member in (wedding.florist, wedding.florist_admin):
        refused = await wedding.rest.call(
            "PUT", path, member, json_body={"retention_days_after_wedding": 90}
        )
        assert refused.status == 403

    changed = await wedding.rest.call(
        "PUT", path, wedding.planner, json_body={"retention_days_after_wedding": 90}
    )
    assert changed.status == 200, changed.body
    assert changed.json["retention_days_after_wedding"] == 90
    assert datetime.fromisoformat(changed.json["purge_due"]) == WEDDING_START + timedelta(days=90)
    [entry] = await wedding.audit_of("group.retention")
    assert entry["details"] == {
        "changes": {"retention_days_after_wedding": {"from": 365, "to": 90}}
    }
    assert entry["actor_user_id"] == wedding.planner.user_id

    stored = await wedding.rows(
        "SELECT retention_days_after_wedding AS r FROM vendor_connection_groups WHERE id = $1",
        wedding.group.id,
    )
    assert stored[0]["r"] == 90
    # The new days take effect at the next pass.
    assert (await wedding.run_pass(WEDDING_START + timedelta(days=90))).purged == [wedding.group.id]


@pytest.mark.parametrize(
    "body, field",
    [
        ({"archive_days_after_wedding": 365}, "archive_days_after_wedding"),
        ({"retention_days_after_wedding": 30}, "retention_days_after_wedding"),
        ({"retention_days_after_wedding": 0}, "retention_days_after_wedding"),
        ({"archive_days_after_wedding": -1}, "archive_days_after_wedding"),
        ({"retention_days_after_wedding": 36501}, "retention_days_after_wedding"),
        ({"retention_days_after_wedding": "a year"}, "retention_days_after_wedding"),
    ],
)
async def test_days_the_hub_refuses_are_a_422_naming_the_field(wedding: Wedding, body, field):
    path = f"/groups/{wedding.group.id}/retention"
    refused = await wedding.rest.call("PUT", path, wedding.planner, json_body=body)
    assert refused.status == 422, refused.body
    assert field in [d.get("field") for d in refused.json["error"]["details"]]
    assert (await wedding.rest.call("GET", path, wedding.planner)).json[
        "retention_days_after_wedding"
    ] == 365


async def test_a_hold_without_a_reason_is_refused(wedding: Wedding):
    path = f"/groups/{wedding.group.id}/legal-hold"
    for body in ({}, {"reason": ""}, {"reason": "x" * 501}):
        refused = await wedding.rest.call("PUT", path, wedding.planner, json_body=body)
        assert refused.status == 422, body
        assert "reason" in [d.get("field") for d in refused.json["error"]["details"]]


async def test_a_group_of_another_organization_has_no_retention_to_see(wedding: Wedding):
    from tests.factories import new_member

    stranger = await new_member(wedding.hub.storage, wedding.settings, name="Sam Stranger")
    for method, suffix in (("GET", "retention"), ("DELETE", "legal-hold")):
        answer = await wedding.rest.call(method, f"/groups/{wedding.group.id}/{suffix}", stranger)
        assert answer.status == 404


async def test_a_pass_the_database_fails_changes_nothing_and_the_next_one_does_it(
    wedding: Wedding, monkeypatch
):
    from hub.errors import StorageUnavailable

    await wedding.set_wedding_date(WEDDING)
    await wedding.post(wedding.planner, "Tent at 3pm")
    storage = wedding.hub.storage

    async def unavailable(op, **kw):
        op.close()
        raise StorageUnavailable("the database is unavailable")

    monkeypatch.setattr(storage, "read", unavailable)
    with pytest.raises(StorageUnavailable):
        await wedding.run_pass(WEDDING_START + timedelta(days=365))
    monkeypatch.undo()
    assert (await wedding.group_row())["status"] == "active"

    report = await wedding.run_pass(WEDDING_START + timedelta(days=365))
    assert report.purged == [wedding.group.id]
