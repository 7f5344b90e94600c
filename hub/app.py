"""The whole hub as one supervision tree in one `trio.run`.

    run_hub
    ├── storage actor        (open_storage; flushed last, after everything that writes)
    └── nursery
        └── REST server      (Hypercorn, Trio worker)

Shutdown is one event: servers stop accepting and finish what they hold, then the storage
context closes its inbox and commits what it had accepted before the process exits.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import trio

from hub.auth import TokenVerifier
from hub.config import Settings
from hub.http.app import BASE_PATH, create_app
from hub.http.server import serve_http
from hub.storage import Storage, open_storage

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Running:
    """What a started hub reports: where it listens, and its storage (for tests and tools)."""

    rest_url: str
    storage: Storage


async def run_hub(
    settings: Settings,
    shutdown: trio.Event,
    *,
    task_status: trio.TaskStatus[Running] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run until `shutdown` is set, then stop in order: servers first, storage last."""
    verifier = TokenVerifier(settings)
    async with open_storage(settings) as storage:
        app = create_app(settings, storage, verifier)
        async with trio.open_nursery() as nursery:
            http_base = await nursery.start(
                serve_http, app, settings.http_host, settings.http_port, shutdown
            )
            running = Running(rest_url=http_base + BASE_PATH, storage=storage)
            log.info("hub: REST on %s", running.rest_url)
            task_status.started(running)
        log.info("hub: servers stopped; flushing storage")
