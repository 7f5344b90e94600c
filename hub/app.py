"""The whole hub as one supervision tree in one `trio.run`.

    run_hub
    ├── storage actor          (open_storage; flushed last, after everything that writes)
    └── actors nursery
        ├── supervisor         (the broker, thread actors and session timers; its router is
        │                       the MessageRouter REST and sockets post through: hub.actors)
        ├── attachment sweep   (unattached uploads and stray blobs: hub.attachments.sweeper)
        ├── dispatcher         (the notification outbox, delivered at least once:
        │                       hub.actors.dispatcher)
        ├── escalation         (reminders of what is not acknowledged, by the wedding's
        │                       closeness: hub.actors.escalation)
        ├── retention          (groups archived and purged by their wedding's days, old
        │                       audit rows deleted: hub.actors.retention)
        ├── key watch          (data keys destroyed elsewhere forgotten: hub.actors.keywatch)
        └── servers nursery
            ├── REST server    (Hypercorn, Trio worker)
            └── WebSocket      (trio-websocket, checked at start; one session actor per socket)

One `hub.metrics.Metrics` per hub: the storage actors, the realtime layer and the REST app count
in it, and what they already keep as state (`HubStats`, `StorageStats`, inbox depths, sockets
open) is read from them when `/metrics` is scraped (`_readings`).

Shutdown is one event: both servers stop accepting; REST finishes its requests, every socket is
closed with 1001 after writing what it had queued; only when the servers nursery is empty are the
thread actors cancelled (they save presence on the way out), and then the storage context closes
its inbox and commits what it had accepted before the process exits.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import trio

from hub.actors.dispatcher import Dispatcher, RetryPolicy
from hub.actors.escalation import Escalation, StoredReminders
from hub.actors.inapp import InApp
from hub.actors.keywatch import KeyWatch
from hub.actors.outward import EmailChannel, WebhookChannel
from hub.actors.retention import Retention, StoredRetention
from hub.actors.supervisor import Supervisor
from hub.attachments.service import Attachments
from hub.attachments.stores import describe_blob_url, open_blob_store
from hub.attachments.sweeper import run_sweeper
from hub.auth import TokenVerifier
from hub.broker import Broker, make_broker
from hub.config import Settings
from hub.errors import ConfigError
from hub.http.app import BASE_PATH, create_app
from hub.http.server import serve_http
from hub.http.service import Readiness
from hub.http.webhooks import hub_origins
from hub.metrics import LaneReading, Metrics, Readings
from hub.notifications.email import EmailSender, parse_smtp_url
from hub.storage import Storage, open_storage
from hub.ws.internals import check_shape
from hub.ws.server import WebSocketServer

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Running:
    """What a started hub reports: where it listens, its storage and its realtime supervisor
    (for tests and tools)."""

    rest_url: str
    storage: Storage
    ws_url: str = ""
    supervisor: Supervisor | None = None
    metrics: Metrics | None = None
    attachments: Attachments | None = None
    dispatcher: Dispatcher | None = None
    key_watch: KeyWatch | None = None


async def run_hub(
    settings: Settings,
    shutdown: trio.Event,
    *,
    broker: Broker | None = None,
    task_status: trio.TaskStatus[Running] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run until `shutdown` is set, then stop in order: servers, thread actors, storage.
    `broker` replaces the one the settings choose (tests run in-process clusters with it)."""
    check_shape()  # a trio-websocket of the wrong shape stops the hub before it touches storage
    verifier = TokenVerifier(settings)
    metrics = Metrics(settings.node_id)
    if settings.production and settings.metrics_token is None:
        log.warning(
            "hub: HUB_METRICS_TOKEN is not set: /metrics is public on the HTTP port "
            "(no tenant data, but volumes and latencies); set it, or keep /metrics off the "
            "load balancer"
        )
    if settings.production and not settings.ws_origins:
        log.warning(
            "hub: HUB_WS_ORIGINS is empty: in production no browser may open a WebSocket, so the "
            "web client at / cannot connect; set it to the origin people open (https://…)"
        )
    async with open_storage(settings, metrics=metrics) as storage:
        if broker is None:
            broker = make_broker(settings, metrics)
        else:
            broker.metrics = metrics  # it counts in this hub's registry, as one it made would
        supervisor = Supervisor(settings, storage, metrics, broker)
        websockets = WebSocketServer(supervisor, verifier)
        metrics.read_at_scrape(functools.partial(_readings, websockets, supervisor, storage))
        try:
            blobs = await open_blob_store(settings.blob_url)
        except ValueError as exc:
            raise ConfigError(f"HUB_BLOB_URL: {exc}") from None
        log.info("hub: attachments in %s", describe_blob_url(settings.blob_url))
        app = create_app(
            settings,
            storage,
            verifier,
            router=supervisor.router,
            readiness=Readiness(shutdown, broker),
            hub_metrics=metrics,
            blobs=blobs,
        )
        origins = app.extensions["hub"]
        supervisor.attachments = origins["attachments"]
        supervisor.rest_identities = origins["identities"]
        dispatcher = Dispatcher(
            storage,
            _channels(
                settings, storage, supervisor, lambda: origins.get("own_origins", frozenset())
            ),
            retry=RetryPolicy(
                base_s=settings.notify_retry_base_s, max_attempts=settings.notify_max_attempts
            ),
            lease_s=settings.notify_lease_s,
            metrics=metrics,
        )
        storage.outbox_written = dispatcher.kick
        async with trio.open_nursery() as actors:
            await actors.start(supervisor.run)
            await actors.start(
                run_sweeper, app.extensions["hub"]["attachments"], settings.attachment_orphan_hours
            )
            await actors.start(dispatcher.run)
            await actors.start(Escalation(StoredReminders(storage, metrics)).run)
            retention = StoredRetention(
                storage,
                app.extensions["hub"]["attachments"],
                settings.audit_retention_days,
                metrics,
            )
            await actors.start(
                Retention(retention, settings.retention_interval_s, metrics=metrics).run
            )
            rest_identities = app.extensions["hub"]["identities"]

            async def erased(organization_ids: set[UUID]) -> None:
                for organization_id in organization_ids:
                    supervisor.organization_erased(organization_id)
                    rest_identities.forget_organization(organization_id)

            key_watch = KeyWatch(storage.sealing, settings.key_check_s, on_erased=erased)
            await actors.start(key_watch.run)
            async with trio.open_nursery() as servers:
                http_base = await servers.start(
                    functools.partial(serve_http, idle_timeout_s=settings.http_idle_timeout_s),
                    app,
                    settings.http_host,
                    settings.http_port,
                    shutdown,
                )
                ws_url = await servers.start(websockets.run, shutdown)
                app.extensions["hub"]["ws_url"] = ws_url  # the web client connects here
                # No webhook may target where this hub listens (hub.http.webhooks).
                app.extensions["hub"]["own_origins"] = hub_origins(settings, http_base, ws_url)
                running = Running(
                    rest_url=http_base + BASE_PATH,
                    storage=storage,
                    ws_url=ws_url,
                    supervisor=supervisor,
                    metrics=metrics,
                    attachments=app.extensions["hub"]["attachments"],
                    dispatcher=dispatcher,
                    key_watch=key_watch,
                )
                log.info(
                    "hub: node %s, REST on %s, WebSocket on %s",
                    settings.node_id,
                    running.rest_url,
                    running.ws_url,
                )
                task_status.started(running)
            log.info("hub: servers stopped; stopping thread actors")
            actors.cancel_scope.cancel()
        log.info("hub: flushing storage")


def _channels(
    settings: Settings,
    storage: Storage,
    supervisor: Supervisor,
    own_origins: Callable[[], frozenset[str]],
) -> dict[str, Any]:
    """The dispatcher's channels: in-app and webhooks always, e-mail with an SMTP server
    (HUB_SMTP_URL, checked in full here so a bad one stops the start)."""
    channels: dict[str, Any] = {
        "in_app": InApp(supervisor),
        "webhook": WebhookChannel(
            lambda: storage.sealing.keyring,
            allow_hosts=settings.webhook_allow_hosts,
            hub_origins=lambda: own_origins() or hub_origins(settings),
        ),
    }
    if settings.smtp_url is not None:
        assert settings.smtp_from is not None  # load_settings requires it with a server
        target = parse_smtp_url(settings.smtp_url)  # ConfigError naming the variable
        public = settings.public_url or f"http://{settings.http_host}:{settings.http_port}"
        channels["email"] = EmailChannel(
            EmailSender(target, settings.smtp_from), settings.smtp_from, public
        )
        storage.outward = ("webhook", "email")
        log.info("hub: notification e-mail through %r", target)
    return channels


def _readings(websockets: WebSocketServer, supervisor: Supervisor, storage: Storage) -> Readings:
    """What a scrape reads from the running parts (hub.metrics, `Readings`)."""
    stats = supervisor.stats
    return Readings(
        sockets_open=websockets.sockets_open,
        sessions_authenticated=stats.connections,
        thread_actors=stats.thread_actors,
        thread_inbox_max=supervisor.threads.fullest_inbox(),
        thread_actor_starts=stats.actor_starts,
        thread_actor_crashes=stats.actor_crashes,
        slow_consumer_disconnects=stats.slow_consumers_cut,
        heartbeat_timeouts=stats.heartbeat_timeouts,
        abuse_disconnects=stats.abuse_closes,
        broker_connected=supervisor.broker.connected,
        lanes=[
            LaneReading(depth, lane.connected, lane.batches_failed, lane.reconnects)
            for depth, lane in zip(storage.inbox_depths, storage.lane_stats, strict=True)
        ],
    )
