"""Browser tests of the web client: Debian's chromium driven by Playwright (its own browser
download cannot work on these machines), against real `hub serve` processes.

Without /usr/bin/chromium (or HUB_TEST_CHROMIUM) the tests are skipped with that reason; with
HUB_REQUIRE_BROWSER=1, as `.ci/run` sets it after installing chromium, they fail instead.
Every test starts its own hub, so a test that stops one disturbs nobody.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.web.hubproc import Vendor, WebHub

CHROMIUM = os.environ.get("HUB_TEST_CHROMIUM", "/usr/bin/chromium")
REQUIRE_BROWSER = os.environ.get("HUB_REQUIRE_BROWSER", "") == "1"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
PHONE = {"width": 360, "height": 740}
DESKTOP = {"width": 1280, "height": 800}


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        reason = f"no chromium at {CHROMIUM} (apt-get install chromium)"
        if REQUIRE_BROWSER:
            pytest.fail(f"HUB_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    # tests/conftest.py imports trio_asyncio, whose event loop policy makes every new asyncio
    # loop a trio-asyncio one; Playwright's sync API needs a plain asyncio loop of its own, so
    # it gets one made under asyncio's default policy (the loop keeps no reference to it).
    policy = asyncio.get_event_loop_policy()
    asyncio.set_event_loop_policy(asyncio.DefaultEventLoopPolicy())
    try:
        manager = sync_playwright()
        playwright = manager.start()
    finally:
        asyncio.set_event_loop_policy(policy)
    try:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
    finally:
        manager.__exit__(None, None, None)


def _hub(database_url: str, tmp_path: Path) -> Iterator[WebHub]:
    var_dir = tmp_path / "hub"
    var_dir.mkdir()
    hub = WebHub(database_url, var_dir)
    hub.start()
    try:
        yield hub
    finally:
        hub.stop()


@pytest.fixture
def web_hub(tmp_path: Path) -> Iterator[WebHub]:
    """A hub on SQLite, the embedded default."""
    yield from _hub(f"sqlite:///{tmp_path}/hub.db", tmp_path)


@pytest.fixture
def web_hub_both(database_url: str, tmp_path: Path) -> Iterator[WebHub]:
    """A hub on each backend (PostgreSQL in a database of the test's own)."""
    yield from _hub(database_url, tmp_path)


@dataclass
class Wedding:
    """Planner A's group, florist B's organization invited and accepted, one thread."""

    hub: WebHub
    planner: Vendor
    florist: Vendor
    group_id: str
    thread_id: str

    def post(self, vendor: Vendor, body: str, thread_id: str | None = None) -> dict:
        return self.hub.call(
            vendor, "POST", f"/threads/{thread_id or self.thread_id}", {"body": body}
        )

    def history(self, vendor: Vendor, thread_id: str | None = None) -> list[dict]:
        detail = self.hub.call(vendor, "GET", f"/threads/{thread_id or self.thread_id}?limit=200")
        return detail["messages"]

    def thread(self, title: str, priority: str = "normal") -> str:
        created = self.hub.call(
            self.planner,
            "POST",
            "/threads",
            {"group_id": self.group_id, "title": title, "priority": priority},
        )
        return created["id"]


def make_wedding(hub: WebHub) -> Wedding:
    planner = Vendor("Pat Planner", uuid.uuid4())
    florist = Vendor("Fran Florist", uuid.uuid4())
    group = hub.call(
        planner, "POST", "/groups", {"name": "Smith & Jones", "wedding_date": "2027-06-12"}
    )
    hub.call(florist, "GET", "/groups")  # the hub meets the florist's organization
    hub.call(
        planner,
        "POST",
        f"/groups/{group['id']}",
        {"organization_id": str(florist.org_id), "vendor_type": "florist"},
    )
    hub.call(florist, "POST", f"/groups/{group['id']}/accept")
    thread = hub.call(
        planner, "POST", "/threads", {"group_id": group["id"], "title": "Ceremony flowers"}
    )
    return Wedding(hub, planner, florist, group["id"], thread["id"])


@pytest.fixture
def wedding(web_hub: WebHub) -> Wedding:
    return make_wedding(web_hub)


@pytest.fixture
def wedding_both(web_hub_both: WebHub) -> Wedding:
    return make_wedding(web_hub_both)


@pytest.fixture
def open_app(browser) -> Iterator[Callable[..., object]]:
    """open_app(hub, vendor, viewport=PHONE, path="") -> a page signed in as `vendor` (through
    the URL fragment, as the banner's link does); every context is closed at the end."""
    contexts = []

    def open_app(hub: WebHub, vendor: Vendor, viewport: dict = PHONE, path: str = "", **options):
        context = browser.new_context(viewport=viewport, **options)
        context.set_default_timeout(15000)
        contexts.append(context)
        page = context.new_page()
        page.errors = []  # type: ignore[attr-defined]
        page.on("pageerror", lambda error: page.errors.append(str(error)))
        page.goto(f"{hub.url}/{path}{'&' if path else '#'}token={vendor.token}")
        return page

    yield open_app
    for context in contexts:
        context.close()
