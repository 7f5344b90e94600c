"""A subject for export tests, over real sockets on both backends: Flora Green of Bloom & Co,
a vendor in two weddings of two planners, who has sent messages (a mention with metadata, a
change of plan, a file), read, muted, confirmed and been notified; people around her who wrote
things of their own; and an organization with nothing to do with her."""

from __future__ import annotations

import io
import uuid
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from hub.app import Running
from hub.config import Settings
from hub.storage.presence import set_presence
from hub.storage.receipts import mark_read
from hub.storage.records import Group, Thread
from hub.storage.sql import Op, fetch
from hub.storage.webhooks import WebhookRecord, create_webhook
from tests.attachments.conftest import Reply, Rest, png
from tests.factories import Member, add_member, new_group, new_member, new_thread
from tests.realtime.conftest import hub_for, realtime_settings

RATES = {
    "HUB_RATE_READ_BURST": "1000",
    "HUB_RATE_WRITE_BURST": "1000",
    "HUB_RATE_SEND_BURST": "1000",
    "HUB_RATE_UPLOAD_BURST": "1000",
    "HUB_RATE_EXPORT_BURST": "1000",
}
# Stored as a webhook's sealed secret: no export may carry it.
WEBHOOK_SECRET = "sealed-secret-that-no-export-may-carry"


@dataclass
class World:
    hub: Running
    settings: Settings
    rest: Rest
    flora: Member  # the subject: "Flora Green", a vendor of Bloom & Co
    fern: Member  # "Fern Owner", Bloom & Co's owner
    paula: Member  # "Paula Planner" of Petal Planning, owns the first wedding
    otto: Member  # "Otto Organiser" of Other Events, owns the second
    eve: Member  # "Eve Outsider", another organization with messages of its own
    groups: list[Group]
    threads: list[Thread]  # one in each wedding
    photo: bytes  # the file Flora sent
    photo_id: str
    sent: dict[str, int] = field(default_factory=dict)  # what Flora sent: body -> seq
    others: list[str] = field(default_factory=list)  # bodies others sent

    async def post(self, sender: Member, thread: Thread, body: str, **fields: Any) -> Reply:
        reply = await self.rest.call(
            "POST", f"/threads/{thread.id}", sender, json_body={"body": body, **fields}
        )
        assert reply.status in (200, 201), reply.body
        return reply

    async def rows(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        def op() -> Op[list[dict[str, Any]]]:
            return (yield fetch(sql, *args))

        return await self.hub.storage.read(op())

    async def export(self, member: Member, path: str = "/me/export") -> Reply:
        return await self.rest.call("GET", path, member)


def archive(reply: Reply) -> zipfile.ZipFile:
    assert reply.status == 200, reply.body[:500]
    return zipfile.ZipFile(io.BytesIO(reply.body))


@pytest.fixture
def settings(database_url: str, tmp_path) -> Settings:
    return realtime_settings(database_url, tmp_path / "var", **RATES)


@pytest.fixture
async def hub(settings: Settings) -> AsyncIterator[Running]:
    async with hub_for(settings) as running:
        yield running


@pytest.fixture
async def world(hub: Running, settings: Settings) -> World:
    storage = hub.storage
    flora = await new_member(
        storage, settings, role="vendor", name="Flora Green", organization_name="Bloom & Co"
    )
    fern = await new_member(storage, settings, org_id=flora.org_id, name="Fern Owner")
    paula = await new_member(
        storage, settings, name="Paula Planner", organization_name="Petal Planning"
    )
    otto = await new_member(
        storage, settings, name="Otto Organiser", organization_name="Other Events"
    )
    eve = await new_member(storage, settings, name="Eve Outsider", organization_name="Elsewhere")
    first = await new_group(storage, paula, name="Rivera & Chen")
    second = await new_group(storage, otto, name="Smith & Jones")
    for group, owner in ((first, paula), (second, otto)):
        await add_member(storage, group, flora, invited_by=owner)
    eves_group = await new_group(storage, eve, name="Elsewhere wedding")
    ceremony = await new_thread(storage, first, paula, title="Ceremony timeline")
    flowers = await new_thread(storage, second, otto, title="Flower delivery")
    eves_thread = await new_thread(storage, eves_group, eve, title="Eve's own thread")
    photo = png(80, 60)
    world = World(
        hub,
        settings,
        Rest(hub),
        flora,
        fern,
        paula,
        otto,
        eve,
        [first, second],
        [ceremony, flowers],
        photo,
        "",
    )

    asked = await world.post(
        paula, ceremony, "Paula's words: can @Flora Green confirm 3pm?", requires_ack=True
    )
    world.others.append("Paula's words: can @Flora Green confirm 3pm?")
    mention = await world.post(
        flora,
        ceremony,
        "Peonies for @Paula Planner, blush",
        metadata={"colour": "blush", "stems": 40},
    )
    world.sent["Peonies for @Paula Planner, blush"] = mention.json["seq"]
    change = await world.post(flora, ceremony, "Delivery moves to 2pm", kind="change")
    world.sent["Delivery moves to 2pm"] = change.json["seq"]
    upload = await world.rest.upload(
        flora, flowers.id, photo, filename="bouquet/../shot.png", content_type="image/png"
    )
    assert upload.status == 201, upload.body
    world.photo_id = upload.json["id"]
    sent_file = await world.post(
        flora, flowers, "The bouquet", kind="attachment", attachment_ids=[world.photo_id]
    )
    world.sent["The bouquet"] = sent_file.json["seq"]
    await world.post(otto, flowers, "Otto's own reply")
    world.others.append("Otto's own reply")
    await world.post(eve, eves_thread, "Eve's private words")
    world.others.append("Eve's private words")

    ack = await world.rest.call(
        "POST", f"/threads/{ceremony.id}/messages/{asked.json['seq']}/ack", flora
    )
    assert ack.status in (200, 201), ack.body
    prefs = await world.rest.call(
        "PUT",
        "/me/notification-preferences",
        flora,
        json_body={"quiet_hours": {"start": "22:00", "end": "07:00"}, "time_zone": "Europe/Madrid"},
    )
    assert prefs.status == 200, prefs.body
    mute = await world.rest.call(
        "PUT", f"/threads/{flowers.id}/mute", flora, json_body={"muted": True}
    )
    assert mute.status == 200, mute.body
    await storage.write(
        lambda now: mark_read(thread_id=ceremony.id, user_id=flora.user_id, seq=2, now=now)
    )
    await storage.write(
        lambda now: set_presence(
            thread_id=flowers.id, user_id=flora.user_id, status="busy", now=now
        )
    )
    await storage.write(
        lambda now: create_webhook(
            WebhookRecord(
                id=uuid.uuid4(),
                organization_id=flora.org_id,
                url="https://hooks.example/bloom",
                events=["mention"],
                secret_sealed=WEBHOOK_SECRET,
                created_by=fern.user_id,
                created_at=now,
            )
        )
    )
    return world
