"""A wedding for retention tests, over real sockets on both backends: a planner's group with a
florist (a vendor and the shop's admin), one thread, a REST client that sends exact bytes
(tests.attachments.conftest.Rest), and one retention pass at a moment the test chooses, through
the same `StoredRetention` the hub's actor and `hub retention run` use."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest

from hub.actors.retention import PassReport, StoredRetention
from hub.app import Running
from hub.config import Settings
from hub.storage.groups import update_group
from hub.storage.records import Group, Thread
from hub.storage.sql import Op, fetch
from tests.attachments.conftest import Reply, Rest
from tests.factories import Member, add_member, new_group, new_member, new_thread
from tests.realtime.conftest import hub_for, realtime_settings

RATES = {
    "HUB_RATE_READ_BURST": "1000",
    "HUB_RATE_WRITE_BURST": "1000",
    "HUB_RATE_SEND_BURST": "1000",
    "HUB_RATE_UPLOAD_BURST": "1000",
    # Passes run years ahead of the wall clock that stamps audit rows: they would delete them.
    "HUB_AUDIT_RETENTION_DAYS": "36500",
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
    florist_admin: Member  # "Fern Admin" of "Bloom & Co": an admin, but not of the owner

    async def post(self, sender: Member, body: str, **fields: Any) -> Reply:
        reply = await self.rest.call(
            "POST", f"/threads/{self.thread.id}", sender, json_body={"body": body, **fields}
        )
        assert reply.status in (200, 201), reply.body
        return reply

    async def rows(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        def op() -> Op[list[dict[str, Any]]]:
            return (yield fetch(sql, *args))

        return await self.hub.storage.read(op())

    async def count(self, table: str) -> int:
        [row] = await self.rows(f"SELECT count(*) AS n FROM {table}")
        return int(row["n"])

    async def group_row(self) -> dict[str, Any]:
        [row] = await self.rows(
            "SELECT status, archived_at, purged_at FROM vendor_connection_groups WHERE id = $1",
            self.group.id,
        )
        return row

    async def set_wedding_date(self, day: date | None) -> None:
        await self.hub.storage.write(
            lambda now: update_group(self.group.id, {"wedding_date": day}, now)
        )

    async def run_pass(self, now: datetime, **options: Any) -> PassReport:
        assert self.hub.attachments is not None
        work = StoredRetention(
            self.hub.storage,
            self.hub.attachments,
            self.settings.audit_retention_days,
            **options,
        )
        return await work.run_pass(now)

    async def audit_of(self, action: str) -> list[dict[str, Any]]:
        return await self.rows(
            "SELECT actor_user_id, actor_org_id, target_id, group_id, details "
            "FROM vendor_communication_audit WHERE action = $1 ORDER BY id",
            action,
        )

    def blob_files(self) -> set[str]:
        root = Path(self.settings.blob_url)
        return {
            p.name for p in root.rglob("*") if p.is_file() and p.relative_to(root).parts[0] != "tmp"
        }


@pytest.fixture
def retention_overrides() -> dict[str, str]:
    return {}


@pytest.fixture
def settings(database_url: str, tmp_path, retention_overrides) -> Settings:
    return realtime_settings(database_url, tmp_path / "var", **{**RATES, **retention_overrides})


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
    group = await new_group(storage, planner, name="Rivera & Chen")
    await add_member(storage, group, florist, invited_by=planner)
    thread = await new_thread(storage, group, planner, title="Ceremony timeline")
    return Wedding(hub, settings, Rest(hub), group, thread, planner, florist, florist_admin)
