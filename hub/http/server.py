"""Serving the REST app with Hypercorn's Trio worker, as one more task of the hub's tree."""

from __future__ import annotations

import logging

import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from quart_trio import QuartTrio

log = logging.getLogger(__name__)


async def serve_http(
    app: QuartTrio,
    host: str,
    port: int,
    shutdown: trio.Event,
    *,
    idle_timeout_s: float,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until `shutdown` is set; reports the bound base URL once listening.

    `idle_timeout_s` bounds every wait for the client's next bytes: a keep-alive connection
    between requests (Hypercorn's keep-alive timeout), a request head or body that stops
    arriving (its read timeout, which alone ends reading but leaves the socket to the keep-alive
    timer while no request is in flight, hence both), and also the wait for the app's answer to
    a complete request, as Hypercorn reads on meanwhile (after a half-close, `FramingGuard`
    bounds that wait with the same figure); `hub.config` makes it exceed the storage timeout for
    that reason."""
    config = Config()
    config.bind = [f"{host}:{port}"]
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.graceful_timeout = 5.0
    config.include_server_header = False
    config.keep_alive_timeout = idle_timeout_s
    config.read_timeout = idle_timeout_s  # type: ignore[assignment]  # typed int, used as seconds

    async def started(*, task_status: trio.TaskStatus[list[str]]) -> None:
        await serve(app, config, shutdown_trigger=shutdown.wait, task_status=task_status)

    async with trio.open_nursery() as nursery:
        binds = await nursery.start(started)
        task_status.started(binds[0])
