"""Uploads travel in messages of kind `attachment`, over REST and WebSocket alike; the refusals
name the upload at fault; the sweep removes uploads never attached, and blobs no row names."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import trio

from hub import client as hub_client
from hub import protocol
from hub.attachments.sweeper import run_sweeper, sweep_period_s
from hub.storage.sql import fetch
from tests.attachments.conftest import Wedding, png

CONTRACT = b"Catering contract\nMenu: three courses for 120 guests\n"


async def upload_text(wedding: Wedding, member, thread_id, data: bytes = CONTRACT) -> dict:
    reply = await wedding.rest.upload(
        member, thread_id, data, filename="contract.txt", content_type="text/plain"
    )
    assert reply.status == 201, reply.body
    return reply.json


def stored_files(root: Path) -> list[str]:
    return sorted(p.name for p in root.rglob("*") if p.is_file() and p.parent.name != "tmp")


def _select(sql: str, *args):
    rows = yield fetch(sql, *args)
    return rows


async def message_ids_of_uploads(wedding: Wedding) -> dict[str, int | None]:
    rows = await wedding.hub.storage.read(_select("SELECT id, message_id FROM message_attachments"))
    return {str(r["id"]): r["message_id"] for r in rows}


async def test_a_message_over_rest_carries_its_uploads(wedding: Wedding):
    photo = await wedding.rest.upload(
        wedding.planner, wedding.thread.id, png(), filename="arch.png", content_type="image/png"
    )
    text = await upload_text(wedding, wedding.planner, wedding.thread.id)
    ids = [photo.json["id"], text["id"]]
    sent = await wedding.rest.call(
        "POST",
        f"/threads/{wedding.thread.id}",
        wedding.planner,
        json_body={
            "kind": "attachment",
            "body": "The arch, and the signed contract",
            "attachment_ids": ids,
            "client_msg_id": "files-1",
        },
    )
    assert sent.status == 201, sent.body
    message_id = sent.json["id"]
    linked = await message_ids_of_uploads(wedding)
    assert linked == {ids[0]: message_id, ids[1]: message_id}

    page = await wedding.rest.call("GET", f"/threads/{wedding.thread.id}", wedding.photographer)
    message = page.json["messages"][-1]
    assert message["kind"] == "attachment"
    assert message["body"] == "The arch, and the signed contract"
    carried = message["metadata"]["attachments"]
    assert [a["id"] for a in carried] == ids
    assert carried[0]["filename"] == "arch.png"
    assert carried[0]["content_type"] == "image/png"
    assert (carried[0]["width"], carried[0]["height"]) == (64, 48)
    assert carried[0]["thumbnail"] is True
    assert carried[1] == {
        "id": ids[1],
        "filename": "contract.txt",
        "content_type": "text/plain",
        "size": len(CONTRACT),
        "sha256": text["sha256"],
        "thumbnail": False,
    }
    info = await wedding.rest.call("GET", f"/attachments/{ids[1]}/info", wedding.photographer)
    assert info.json["message_id"] == message_id

    # A retry of the same send is the same message, not a refusal.
    retry = await wedding.rest.call(
        "POST",
        f"/threads/{wedding.thread.id}",
        wedding.planner,
        json_body={"kind": "attachment", "attachment_ids": ids, "client_msg_id": "files-1"},
    )
    assert retry.status == 200 and retry.json["duplicate"] is True
    assert retry.json["id"] == message_id


async def test_uploads_that_cannot_be_attached_are_refused_by_name(wedding: Wedding):
    mine = await upload_text(wedding, wedding.planner, wedding.thread.id)
    theirs = await upload_text(wedding, wedding.photographer, wedding.thread.id)
    elsewhere = await upload_text(wedding, wedding.planner, wedding.other_thread.id)
    path = f"/threads/{wedding.thread.id}"

    async def attach(member, ids, **extra):
        return await wedding.rest.call(
            "POST", path, member, json_body={"kind": "attachment", "attachment_ids": ids, **extra}
        )

    other_sender = await attach(wedding.planner, [theirs["id"]])
    assert other_sender.status == 400
    assert other_sender.json["error"]["message"] == (
        f"attachment {theirs['id']} is not one of your uploads"
    )
    other_thread = await attach(wedding.planner, [elsewhere["id"]])
    assert other_thread.status == 400
    assert "uploaded to another thread" in other_thread.json["error"]["message"]
    unknown = str(uuid.uuid4())
    assert (await attach(wedding.planner, [unknown])).json["error"]["message"] == (
        f"attachment {unknown} is not one of your uploads"
    )
    twice = await attach(wedding.planner, [mine["id"], mine["id"]])
    assert twice.status == 422
    none = await attach(wedding.planner, [])
    assert none.status == 422 and "attachment_ids" in none.json["error"]["message"]
    on_text = await wedding.rest.call(
        "POST", path, wedding.planner, json_body={"body": "hi", "attachment_ids": [mine["id"]]}
    )
    assert on_text.status == 422
    forged = await wedding.rest.call(
        "POST",
        path,
        wedding.planner,
        json_body={"body": "hi", "metadata": {"attachments": [{"id": theirs["id"]}]}},
    )
    assert forged.status == 422
    assert "metadata.attachments" in forged.json["error"]["message"]
    # None of the refusals stored a message or attached anything.
    assert set((await message_ids_of_uploads(wedding)).values()) == {None}

    first = await attach(wedding.planner, [mine["id"]])
    assert first.status == 201
    again = await attach(wedding.planner, [mine["id"]])
    assert again.status == 400
    assert again.json["error"]["message"] == (
        f"attachment {mine['id']} is already attached to message {first.json['id']}"
    )


async def test_another_organizations_upload_is_refused_over_the_websocket(wedding: Wedding):
    theirs = await upload_text(wedding, wedding.photographer, wedding.thread.id)
    async with hub_client.connect(wedding.hub.ws_url, wedding.planner.token) as planner:
        await planner.join(wedding.thread.id)
        try:
            await planner.send(
                wedding.thread.id,
                "",
                kind="attachment",
                attachment_ids=[uuid.UUID(theirs["id"])],
            )
        except hub_client.HubClientError as refusal:
            assert refusal.code == "invalid"
            assert f"attachment {theirs['id']} is not one of your uploads" in refusal.message
        else:
            raise AssertionError("the hub attached another organization's upload")
    assert set((await message_ids_of_uploads(wedding)).values()) == {None}


async def test_a_message_over_the_websocket_carries_its_uploads_live(wedding: Wedding):
    photo = await wedding.rest.upload(
        wedding.planner, wedding.thread.id, png(), filename="tables.png", content_type="image/png"
    )
    async with (
        hub_client.connect(wedding.hub.ws_url, wedding.planner.token) as planner,
        hub_client.connect(wedding.hub.ws_url, wedding.photographer.token) as photographer,
    ):
        await photographer.join(wedding.thread.id)
        await planner.join(wedding.thread.id)
        ack = await planner.send(
            wedding.thread.id,
            "Table layout",
            kind="attachment",
            attachment_ids=[uuid.UUID(photo.json["id"])],
        )
        assert ack.message is not None
        event = await photographer.next_event(protocol.NewMessage)
        live = event.message
        assert live.kind == "attachment"
        assert live.body == "Table layout"
        assert live.seq == ack.message.seq
        [carried] = live.metadata["attachments"]
        assert carried["id"] == photo.json["id"]
        assert carried["filename"] == "tables.png"
        assert carried["sha256"] == photo.json["sha256"]
    linked = await message_ids_of_uploads(wedding)
    assert linked[photo.json["id"]] == ack.message.id


async def test_the_sweep_removes_uploads_never_attached_and_keeps_the_rest(wedding: Wedding):
    service = wedding.hub_attachments
    kept = await upload_text(wedding, wedding.planner, wedding.thread.id)
    sent = await wedding.rest.call(
        "POST",
        f"/threads/{wedding.thread.id}",
        wedding.planner,
        json_body={"kind": "attachment", "attachment_ids": [kept["id"]]},
    )
    assert sent.status == 201
    orphan = await wedding.rest.upload(
        wedding.planner, wedding.thread.id, png(), filename="draft.png", content_type="image/png"
    )
    root = Path(wedding.settings.blob_url)
    assert len(stored_files(root)) == 3  # two files and a thumbnail

    # An allowance that has not passed yet removes nothing.
    assert await service.remove_orphans(datetime.now(UTC) - timedelta(hours=24)) == 0
    assert await service.remove_orphans(datetime.now(UTC) + timedelta(seconds=1)) == 1
    remaining = await message_ids_of_uploads(wedding)
    assert list(remaining) == [kept["id"]]
    assert stored_files(root) == [kept["id"].replace("-", "")]
    gone = await wedding.rest.call("GET", f"/attachments/{orphan.json['id']}", wedding.planner)
    assert gone.status == 404
    expired = await wedding.hub.storage.read(
        _select(
            "SELECT target_id FROM vendor_communication_audit WHERE action = 'attachment.expire'"
        )
    )
    assert [r["target_id"] for r in expired] == [orphan.json["id"]]


async def test_stray_blobs_are_collected_on_the_second_look(wedding: Wedding):
    """A blob no row names (a crash between blob and row) goes; one whose row is written
    between the two looks (an upload finishing) stays, as does every blob a row names."""
    service = wedding.hub_attachments
    named = await upload_text(wedding, wedding.planner, wedding.thread.id)

    async def one(data: bytes):
        yield data

    stray = uuid.uuid4().hex
    await service.blobs.put(stray, one(b"sealed bytes of an upload whose row never came"))
    removed, candidates = await service.collect_strays(set())
    assert removed == 0 and candidates == {stray}
    removed, candidates = await service.collect_strays(candidates)
    assert removed == 1 and candidates == set()
    keys = [key async for key in service.blobs.keys()]
    assert keys == [named["id"].replace("-", "")]


class FakeAttachments:
    """Records when the sweep asks, and with which cut-off."""

    def __init__(self) -> None:
        self.cutoffs: list[datetime] = []
        self.stray_looks: list[set[str]] = []

    async def remove_orphans(self, before: datetime) -> int:
        self.cutoffs.append(before)
        return 0

    async def collect_strays(self, candidates: set[str]) -> tuple[int, set[str]]:
        self.stray_looks.append(set(candidates))
        return 0, {f"look-{len(self.stray_looks)}"}


async def test_the_sweep_runs_on_schedule_with_the_orphan_allowance(autojump_clock):
    fake = FakeAttachments()
    start = datetime(2026, 6, 20, 9, 0, tzinfo=UTC)
    period = sweep_period_s(24)
    assert period == 3600
    async with trio.open_nursery() as nursery:
        await nursery.start(
            lambda task_status: run_sweeper(
                fake, 24, wall_clock=lambda: start, task_status=task_status
            )
        )
        await trio.sleep(3 * period + 1)
        nursery.cancel_scope.cancel()
    assert fake.cutoffs == [
        start + timedelta(hours=hours) - timedelta(hours=24) for hours in (1, 2, 3)
    ]
    # Each look hands the previous look's strays back for the second look.
    assert fake.stray_looks == [set(), {"look-1"}, {"look-2"}]


async def test_a_failed_sweep_is_tried_again_next_period(autojump_clock):
    from hub.errors import StorageUnavailable

    class Flaky(FakeAttachments):
        async def remove_orphans(self, before: datetime) -> int:
            self.cutoffs.append(before)
            if len(self.cutoffs) == 1:
                raise StorageUnavailable("the database is unavailable")
            return 0

    fake = Flaky()
    async with trio.open_nursery() as nursery:
        await nursery.start(run_sweeper, fake, 1.0)
        await trio.sleep(2 * sweep_period_s(1.0) + 1)
        nursery.cancel_scope.cancel()
    assert len(fake.cutoffs) == 2
    assert len(fake.stray_looks) == 1  # the failed pass stopped before its stray look


async def test_a_threads_shared_files_are_listed_newest_first(wedding: Wedding):
    sent_ids = []
    for n in range(3):
        up = await upload_text(wedding, wedding.planner, wedding.thread.id, CONTRACT + b"%d" % n)
        reply = await wedding.rest.call(
            "POST",
            f"/threads/{wedding.thread.id}",
            wedding.planner,
            json_body={"kind": "attachment", "attachment_ids": [up["id"]]},
        )
        assert reply.status == 201
        sent_ids.append(up["id"])
    draft = await upload_text(wedding, wedding.planner, wedding.thread.id)  # not sent: not listed
    path = f"/threads/{wedding.thread.id}/attachments"
    first = await wedding.rest.call("GET", f"{path}?limit=2", wedding.photographer)
    assert first.status == 200
    assert [a["id"] for a in first.json["items"]] == sent_ids[::-1][:2]
    assert all(a["message_id"] for a in first.json["items"])
    assert {(a["uploader_user_id"], a["uploader_name"]) for a in first.json["items"]} == {
        (str(wedding.planner.user_id), "Paula Planner")
    }
    rest = await wedding.rest.call(
        "GET", f"{path}?limit=2&cursor={first.json['next_cursor']}", wedding.photographer
    )
    assert [a["id"] for a in rest.json["items"]] == [sent_ids[0]]
    assert rest.json.get("next_cursor") is None
    assert draft["id"] not in {a["id"] for a in first.json["items"] + rest.json["items"]}
    outsider = await wedding.rest.call("GET", path, wedding.outsider)
    assert outsider.status == 404


async def test_an_uploader_takes_back_an_upload_no_message_carries(wedding: Wedding):
    draft = await upload_text(wedding, wedding.planner, wedding.thread.id)
    path = f"/attachments/{draft['id']}"
    assert (await wedding.rest.call("DELETE", path, wedding.outsider)).status == 404
    other = await wedding.rest.call("DELETE", path, wedding.photographer)
    assert other.status == 403
    removed = await wedding.rest.call("DELETE", path, wedding.planner)
    assert removed.status == 204
    assert await message_ids_of_uploads(wedding) == {}
    assert stored_files(Path(wedding.settings.blob_url)) == []
    assert (await wedding.rest.call("GET", path, wedding.planner)).status == 404

    sent = await upload_text(wedding, wedding.planner, wedding.thread.id)
    reply = await wedding.rest.call(
        "POST",
        f"/threads/{wedding.thread.id}",
        wedding.planner,
        json_body={"kind": "attachment", "attachment_ids": [sent["id"]]},
    )
    kept = await wedding.rest.call("DELETE", f"/attachments/{sent['id']}", wedding.planner)
    assert kept.status == 409
    assert f"attached to message {reply.json['id']}" in kept.json["error"]["message"]
    audit = await wedding.hub.storage.read(
        _select(
            "SELECT target_id FROM vendor_communication_audit WHERE action = 'attachment.delete'"
        )
    )
    assert [r["target_id"] for r in audit] == [draft["id"]]
