"""The whole hub with its attachments in an S3 bucket (moto's server, a real S3 endpoint in a
process of its own), as several nodes would run it: uploads, downloads, thumbnails and the
sweep go through the bucket, and nothing in the bucket holds the plaintext."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from hub import client as hub_client
from hub import protocol
from hub.app import Running
from hub.broker.memory import MemoryBroker, MemoryBus
from hub.config import Settings
from hub.storage.sql import fetchval
from tests.attachments.conftest import Rest, attachment_settings, jpeg_with_gps, png
from tests.cluster.conftest import cluster
from tests.factories import add_member, new_group, new_member, new_thread
from tests.realtime.conftest import hub_for

MARKER = b"Ceremony moved to the orangery at 3pm; the code for the side gate is 4471"


@pytest.fixture
def settings(database_url: str, tmp_path, moto, aws_env, bucket) -> Settings:
    url = f"s3://{bucket}/hub/attachments?endpoint={moto.endpoint}&region=us-east-1"
    return attachment_settings(database_url, tmp_path / "var", HUB_BLOB_URL=url)


@pytest.fixture
async def s3_hub(settings: Settings) -> AsyncIterator[Running]:
    async with hub_for(settings) as running:
        yield running


def bucket_objects(s3, bucket: str) -> dict[str, bytes]:
    listing = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {o["Key"]: s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listing}


async def test_uploads_live_sealed_in_the_bucket(s3_hub: Running, settings, s3, bucket):
    storage = s3_hub.storage
    planner = await new_member(storage, settings, name="Paula Planner")
    florist = await new_member(storage, settings, role="vendor", name="Flo Florist")
    group = await new_group(storage, planner)
    await add_member(storage, group, florist, invited_by=planner)
    thread = await new_thread(storage, group, planner)
    rest = Rest(s3_hub)

    note = await rest.upload(
        planner, thread.id, MARKER * 2000, filename="gate.txt", content_type="text/plain"
    )
    assert note.status == 201, note.body
    photo = await rest.upload(
        florist, thread.id, jpeg_with_gps(), filename="arch.jpg", content_type="image/jpeg"
    )
    assert photo.status == 201, photo.body

    objects = bucket_objects(s3, bucket)
    assert len(objects) == 3  # two files and a thumbnail
    assert all(key.startswith("hub/attachments/") for key in objects)
    assert f"hub/attachments/{note.json['id'].replace('-', '')}" in objects
    for data in objects.values():
        assert MARKER[:20] not in data
        assert b"Phone Camera" not in data

    whole = await rest.call("GET", f"/attachments/{note.json['id']}", florist)
    assert whole.status == 200 and whole.body == MARKER * 2000
    part = await rest.call(
        "GET", f"/attachments/{note.json['id']}", florist, headers={"Range": "bytes=70000-70099"}
    )
    assert part.status == 206 and part.body == (MARKER * 2000)[70000:70100]
    thumb = await rest.call("GET", f"/attachments/{photo.json['id']}/thumbnail", planner)
    assert thumb.status == 200 and thumb.header("Content-Type") == "image/jpeg"

    # The sweep removes an upload never attached, in the bucket too.
    orphan = await rest.upload(
        planner, thread.id, png(), filename="draft.png", content_type="image/png"
    )
    assert orphan.status == 201
    sent = await rest.call(
        "POST",
        f"/threads/{thread.id}",
        planner,
        json_body={"kind": "attachment", "attachment_ids": [note.json["id"]]},
    )
    assert sent.status == 201
    sent = await rest.call(
        "POST",
        f"/threads/{thread.id}",
        florist,
        json_body={"kind": "attachment", "attachment_ids": [photo.json["id"]]},
    )
    assert sent.status == 201
    assert s3_hub.attachments is not None
    removed = await s3_hub.attachments.remove_orphans(datetime.now(UTC) + timedelta(seconds=1))
    assert removed == 1
    assert len(bucket_objects(s3, bucket)) == 3


async def test_a_bucket_that_stops_answering_refuses_uploads_and_stores_no_row(
    s3_hub: Running, settings, s3, bucket
):
    storage = s3_hub.storage
    planner = await new_member(storage, settings, name="Paula Planner")
    thread = await new_thread(storage, await new_group(storage, planner), planner)
    rest = Rest(s3_hub)
    s3.delete_bucket(Bucket=bucket)  # empty, so S3 lets it go: every write now fails

    refused = await rest.upload(
        planner, thread.id, MARKER, filename="gate.txt", content_type="text/plain"
    )
    assert refused.status == 503, refused.body
    error = refused.json["error"]
    assert error["code"] == "storage_unavailable"
    assert "could not store the file" in error["message"]
    assert "dummy" not in refused.body.decode()  # no credential in the answer
    assert s3_hub.attachments is not None
    rows = await storage.read(_count_rows())
    assert rows == 0
    s3.create_bucket(Bucket=bucket)  # and back: the next upload is stored
    ok = await rest.upload(
        planner, thread.id, MARKER, filename="gate.txt", content_type="text/plain"
    )
    assert ok.status == 201, ok.body


def _count_rows():
    value = yield fetchval("SELECT count(*) FROM message_attachments")
    return value


async def test_two_nodes_share_the_bucket(postgres_url, tmp_path, moto, aws_env, bucket):
    """What several nodes need S3 for: a file uploaded through one node is announced live and
    served by the other, which never saw its bytes."""
    url = f"s3://{bucket}/hub?endpoint={moto.endpoint}&region=us-east-1"
    settings = attachment_settings(postgres_url, tmp_path / "var", HUB_BLOB_URL=url)
    bus = MemoryBus()
    async with cluster(settings, [MemoryBroker("node-a", bus), MemoryBroker("node-b", bus)]) as (
        a,
        b,
    ):
        planner = await new_member(a.storage, settings, name="Paula Planner")
        caterer = await new_member(a.storage, settings, role="vendor", name="Cal Caterer")
        group = await new_group(a.storage, planner)
        await add_member(a.storage, group, caterer, invited_by=planner)
        thread = await new_thread(a.storage, group, planner)
        photo = jpeg_with_gps()
        async with hub_client.connect(b.ws_url, caterer.token) as on_b:
            await on_b.join(thread.id)
            up = await Rest(a).upload(
                planner, thread.id, photo, filename="tent.jpg", content_type="image/jpeg"
            )
            assert up.status == 201, up.body
            sent = await Rest(a).call(
                "POST",
                f"/threads/{thread.id}",
                planner,
                json_body={"kind": "attachment", "attachment_ids": [up.json["id"]], "body": "Tent"},
            )
            assert sent.status == 201
            event = await on_b.next_event(protocol.NewMessage)
            [carried] = event.message.metadata["attachments"]
            assert carried["id"] == up.json["id"]
        down = await Rest(b).call("GET", f"/attachments/{up.json['id']}", caterer)
        assert down.status == 200 and down.body == photo
        thumb = await Rest(b).call("GET", f"/attachments/{up.json['id']}/thumbnail", caterer)
        assert thumb.status == 200
