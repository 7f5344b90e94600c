"""A wedding for notification tests, over real sockets on both backends: a planner's group with
a florist (two users: a vendor and the shop's admin), a DJ and an outsider, one thread, and a
REST client that sends exact bytes (tests.attachments.conftest.Rest)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import pytest
import trio

from hub.app import Running
from hub.config import Settings
from hub.storage.records import Group, Thread
from hub.storage.sql import Op, fetch
from tests.attachments.conftest import Reply, Rest
from tests.factories import Member, add_member, new_group, new_member, new_thread
from tests.realtime.conftest import hub_for, realtime_settings

RATES = {
    "HUB_RATE_READ_BURST": "1000",
    "HUB_RATE_WRITE_BURST": "1000",
    "HUB_RATE_SEND_BURST": "1000",
}


@dataclass
class Wedding:
    hub: Running
    settings: Settings
    rest: Rest
    group: Group
    thread: Thread
    planner: Member  # "Paula Planner" of "Petal Planning", owns the group
    florist: Member  # "Flora Green" of "Bloom & Co", a vendor
    florist_admin: Member  # "Fern Admin" of "Bloom & Co"
    dj: Member  # "Dee Jay" of "Beat Box"
    outsider: Member  # "Eve Outsider", in no group

    async def post(self, sender: Member, body: str, **fields: Any) -> Reply:
        return await self.rest.call(
            "POST", f"/threads/{self.thread.id}", sender, json_body={"body": body, **fields}
        )

    async def rows(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        def op() -> Op[list[dict[str, Any]]]:
            return (yield fetch(sql, *args))

        return await self.hub.storage.read(op())

    async def settled(self, channel: str, timeout_s: float = 10.0) -> list[dict[str, Any]]:
        """The channel's deliveries once none is pending: the hub's dispatcher records an
        outcome a moment after the receiver (or the socket) has it."""
        with trio.fail_after(timeout_s):
            while True:
                rows = await self.rows(
                    "SELECT status, attempts, last_error FROM notification_deliveries "
                    "WHERE channel = $1 ORDER BY id",
                    channel,
                )
                if rows and all(r["status"] != "pending" for r in rows):
                    return rows
                await trio.sleep(0.02)

    async def notifications_of(self, member: Member) -> list[dict[str, Any]]:
        return await self.rows(
            "SELECT reason, urgent, seq, thread_id FROM user_notifications WHERE user_id = $1 "
            "ORDER BY id",
            member.user_id,
        )

    async def deliveries_of(self, member: Member) -> list[dict[str, Any]]:
        return await self.rows(
            "SELECT d.channel, d.event, d.status, d.idempotency_key FROM notification_deliveries "
            "AS d JOIN user_notifications AS n ON n.id = d.notification_id WHERE n.user_id = $1 "
            "ORDER BY d.id",
            member.user_id,
        )


@pytest.fixture
def notification_overrides() -> dict[str, str]:
    return {}


@pytest.fixture
def settings(database_url: str, tmp_path, notification_overrides) -> Settings:
    return realtime_settings(database_url, tmp_path / "var", **{**RATES, **notification_overrides})


@pytest.fixture
async def hub(settings: Settings) -> AsyncIterator[Running]:
    async with hub_for(settings) as running:
        yield running


@pytest.fixture
async def wedding(hub: Running, settings: Settings) -> Wedding:
    storage = hub.storage
    planner = await new_member(
        storage, settings, name="Paula Planner", organization_name="Petal Planning"
    )
    florist = await new_member(
        storage, settings, role="vendor", name="Flora Green", organization_name="Bloom & Co"
    )
    florist_admin = await new_member(
        storage, settings, org_id=florist.org_id, role="admin", name="Fern Admin"
    )
    dj = await new_member(
        storage, settings, role="vendor", name="Dee Jay", organization_name="Beat Box"
    )
    outsider = await new_member(storage, settings, name="Eve Outsider")
    group = await new_group(storage, planner, name="Rivera & Chen")
    await add_member(storage, group, florist, invited_by=planner)
    await add_member(storage, group, dj, invited_by=planner)
    thread = await new_thread(storage, group, planner, title="Ceremony timeline")
    return Wedding(
        hub, settings, Rest(hub), group, thread, planner, florist, florist_admin, dj, outsider
    )


def ids(rows: list[dict[str, Any]], key: str = "organization_id") -> set[UUID]:
    return {row[key] for row in rows}
