"""The REST application: one Quart-Trio app, route families in their own modules."""

from __future__ import annotations

import time

from quart_trio import QuartTrio

from hub.auth import TokenVerifier
from hub.config import Settings
from hub.http import errors
from hub.messaging import DirectRouter, MessageRouter
from hub.storage import Storage

BASE_PATH = "/api/vendor-connections"


def create_app(
    settings: Settings,
    storage: Storage,
    verifier: TokenVerifier,
    router: MessageRouter | None = None,
) -> QuartTrio:
    """The REST app. `router` posts messages (the realtime supervisor in the running hub, so
    REST-posted messages reach live sockets); without one, messages are stored directly."""
    app = QuartTrio(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 1024 * 1024
    app.extensions["hub"] = {
        "settings": settings,
        "storage": storage,
        "verifier": verifier,
        "router": router or DirectRouter(storage),
        "started_at": time.monotonic(),
    }
    errors.install(app)

    @app.get(f"{BASE_PATH}/healthz")
    async def healthz() -> tuple[dict, int]:
        from hub.storage.sql import fetchval

        def ping():  # type: ignore[no-untyped-def]
            value = yield fetchval("SELECT 1")
            return value

        uptime = round(time.monotonic() - app.extensions["hub"]["started_at"], 3)
        try:
            await storage.read(ping(), timeout_s=2.0)
        except Exception:
            return {"status": "unavailable", "database": "unreachable", "uptime_s": uptime}, 503
        return {
            "status": "ok",
            "database": storage.engine.name,
            "storage_connected": storage.stats.connected,
            "uptime_s": uptime,
        }, 200

    return app
