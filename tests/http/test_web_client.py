"""The web client's routes where no browser is needed: before the WebSocket server listens the
page says the hub is starting, and a production hub that no browser origin may reach says so."""

from __future__ import annotations

import logging

import trio

from hub.app import run_hub
from tests.conftest import make_settings


async def test_before_the_websocket_listens_the_page_asks_to_retry(app):
    # The app alone (as between the HTTP server starting and the WebSocket server listening):
    # no WebSocket URL to hand the page, so no page that could not connect.
    client = app.test_client()
    for path in ("/", "/app/config.json", "/app/js/app.js"):
        response = await client.get(path)
        error = (await response.get_json())["error"]
        assert response.status_code == 503, path
        assert error["code"] == "overloaded"
        assert "not listening yet" in error["message"]


async def test_production_without_browser_origins_warns_at_start(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="hub.app")
    settings = make_settings(
        f"sqlite:///{tmp_path}/hub.db",
        tmp_path / "var",
        HUB_ENV="production",
        HUB_METRICS_TOKEN="a-metrics-token-of-16+",
    )
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        await nursery.start(run_hub, settings, shutdown)
        shutdown.set()
    warnings = [r.getMessage() for r in caplog.records if r.name == "hub.app"]
    assert any("HUB_WS_ORIGINS is empty" in w and "web client" in w for w in warnings), warnings

    caplog.clear()
    allowed = make_settings(
        f"sqlite:///{tmp_path}/other.db",
        tmp_path / "var2",
        HUB_ENV="production",
        HUB_METRICS_TOKEN="a-metrics-token-of-16+",
        HUB_WS_ORIGINS="https://hub.example",
    )
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        await nursery.start(run_hub, allowed, shutdown)
        shutdown.set()
    assert not any("HUB_WS_ORIGINS" in r.getMessage() for r in caplog.records)
