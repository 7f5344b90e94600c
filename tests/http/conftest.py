"""Fixtures for REST tests: the app on a real storage (both backends), driven through Quart's test
client, and a small world: an owner's group with a vendor member and a thread, plus an outsider
organization that must never see any of it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import trio

from hub.app import Running, run_hub
from hub.auth import TokenVerifier
from hub.http.app import BASE_PATH, create_app
from hub.storage import Storage, open_storage
from tests.conftest import make_settings
from tests.factories import Member, add_member, new_group, new_member, new_thread


@dataclass
class Reply:
    status: int
    json: Any
    headers: Any

    @property
    def error(self) -> dict[str, Any]:
        return self.json["error"]


class Api:
    """Requests as a given member: `await api.get("/groups", as_=alice)`."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.client = app.test_client()

    async def request(
        self,
        method: str,
        path: str,
        *,
        as_: Member | None = None,
        json: Any = None,
        headers: dict[str, str] | None = None,
        data: bytes | None = None,
        query: dict[str, Any] | None = None,
    ) -> Reply:
        all_headers = dict(headers or {})
        if as_ is not None:
            all_headers["Authorization"] = f"Bearer {as_.token}"
        kwargs: dict[str, Any] = {"headers": all_headers}
        if json is not None:
            kwargs["json"] = json
        if data is not None:
            kwargs["data"] = data
        if query is not None:
            kwargs["query_string"] = query
        response = await self.client.open(BASE_PATH + path, method=method, **kwargs)
        body = await response.get_json(force=True, silent=True)
        return Reply(response.status_code, body, response.headers)

    async def get(self, path: str, **kw: Any) -> Reply:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, **kw: Any) -> Reply:
        return await self.request("POST", path, **kw)

    async def put(self, path: str, **kw: Any) -> Reply:
        return await self.request("PUT", path, **kw)

    async def delete(self, path: str, **kw: Any) -> Reply:
        return await self.request("DELETE", path, **kw)


@pytest.fixture
def app(settings, storage: Storage):
    return create_app(settings, storage, TokenVerifier(settings))


@pytest.fixture
def api(app) -> Api:
    return Api(app)


@pytest.fixture
async def owner(storage, settings) -> Member:
    return await new_member(storage, settings, role="owner", name="Olivia Owner")


@pytest.fixture
async def group(storage, owner):
    return await new_group(storage, owner)


@pytest.fixture
async def vendor(storage, settings, group, owner) -> Member:
    """A vendor-role user of another organization, an active member of `group`."""
    member = await new_member(storage, settings, role="vendor", name="Victor Vendor")
    await add_member(storage, group, member, invited_by=owner)
    return member


@pytest.fixture
async def manager(storage, settings, group, owner) -> Member:
    """A manager of the owning organization (active through it)."""
    return await new_member(storage, settings, org_id=owner.org_id, role="manager", name="Mo")


@pytest.fixture
async def outsider(storage, settings) -> Member:
    """The owner of an unrelated organization."""
    return await new_member(storage, settings, role="owner", name="Eve Outsider")


@pytest.fixture
async def thread(storage, group, owner):
    return await new_thread(storage, group, owner)


@pytest.fixture
async def tight_api(database_url, tmp_path) -> AsyncIterator[tuple[Api, Any, Any]]:
    """An app whose budgets allow two requests per class and refill very slowly."""
    settings = make_settings(
        database_url,
        tmp_path / "var-tight",
        HUB_RATE_READ_PER_S="0.01",
        HUB_RATE_READ_BURST="2",
        HUB_RATE_WRITE_PER_S="0.01",
        HUB_RATE_WRITE_BURST="2",
        HUB_RATE_SEND_PER_S="0.01",
        HUB_RATE_SEND_BURST="2",
    )
    async with open_storage(settings) as storage:
        yield Api(create_app(settings, storage, TokenVerifier(settings))), storage, settings


@pytest.fixture
async def roomy_hub(database_url, tmp_path, asyncio_bridge) -> AsyncIterator[tuple[Running, Any]]:
    """The whole hub on loopback, with budgets large enough that generated requests are not
    rate limited; its storage is readable from the test (the asyncio bridge, on PostgreSQL)."""
    settings = make_settings(
        database_url,
        tmp_path / "var",
        **{f"HUB_RATE_{kind}_BURST": "100000" for kind in ("READ", "WRITE", "SEND")},
    )
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        running = await nursery.start(run_hub, settings, shutdown)
        yield running, settings
        shutdown.set()
