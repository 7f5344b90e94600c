"""The hub's metrics: every series `GET /metrics` exposes, defined here once with its help text.

One `Metrics` per hub (hub.app makes it and hands it to the parts that count), each with a
`CollectorRegistry` of its own rather than prometheus_client's global one: tests run several hubs
in one process, and what one hub counted must never show in another's scrape.

Two kinds of series:

- Counted as things happen, by the part that sees them: frames in and out by type (the socket
  reader, the session, the thread actors' fan-out), messages stored, the storage batches and
  their commit time (the storage actor, once per batch), send→commit (the storage actor, per
  message of a batch) and commit→deliver (the thread actor, once per message after its fan-out),
  rate-limit and connection refusals, HTTP requests.
- Read when scraped (`Readings`, wired by hub.app): what the hub already counts in `HubStats` and
  `StorageStats` or can tell at any moment (sockets open, inbox depths), so nothing is counted
  twice and the hot paths pay nothing for them.

Labels are bounded by construction: a frame's `type` is one of the protocol's types or `invalid`;
an HTTP route is the matched rule's template (`/api/vendor-connections/threads/<thread_id>`,
never the path) or `<unmatched>`, a method one of the standard ones or `other`; a lane is a
number below `HUB_STORAGE_WRITERS`; `node` has one value per process. No label holds a thread,
user, organization or message id, and no value a client chose.

The hot path is fan-out (thousands of frames a second): a thread actor counts a fan-out as one
`inc(n)` on a counter child it holds, never n calls, and every child a part uses often is looked
up once, here, not per frame (`labels()` validates and locks on every call).
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram, Info
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector

from hub import protocol

UNMATCHED_ROUTE = "<unmatched>"
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
RATE_LIMITED_DOORS = (
    ("rest", "read"),
    ("rest", "write"),
    ("rest", "send"),
    ("rest", "upload"),
    ("rest", "export"),
    ("websocket", "send"),
)
# Why a WebSocket was refused before it became a session (docs/protocol.md, "Connecting").
WS_REFUSALS = (
    "path",  # 404, another path
    "origin",  # 403, an Origin not allowed
    "max_connections",  # 503, HUB_WS_MAX_CONNECTIONS reached
    "shutting_down",  # 503, the hub is stopping
    "unauthorized",  # 4001 (or 1003 for a binary first frame): no valid token
    "per_user_limit",  # 4029, HUB_WS_MAX_CONNECTIONS_PER_USER reached
    "unavailable",  # 1011, the identity could not be stored
)

# Seconds. Delivery targets are p50 ≤ 20 ms and p99 ≤ 100 ms (docs/performance.md): the buckets
# are finest there, and reach the storage timeout's order for outages.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Commit to fan-out is the actor's own work plus a scheduler pass: well under a millisecond
# unless the hub is behind.
DELIVER_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)


def _tags(union: object) -> dict[type, str]:
    return {
        member: member.__struct_config__.tag  # type: ignore[attr-defined]
        for member in typing.get_args(union)
    }


CLIENT_FRAME_TYPES = _tags(protocol.ClientFrame)
SERVER_FRAME_TYPES = _tags(protocol.ServerFrame)


@dataclass(frozen=True, slots=True)
class LaneReading:
    """One storage lane (`hub.storage.lanes`) as a scrape sees it."""

    inbox_depth: int
    connected: bool
    batches_failed: int
    reconnects: int


@dataclass(frozen=True, slots=True)
class Readings:
    """What a scrape reads from the running hub instead of counting it twice (hub.app builds
    it from the WebSocket server, `HubStats`, the thread registry and the storage lanes)."""

    sockets_open: int = 0
    sessions_authenticated: int = 0
    thread_actors: int = 0
    thread_inbox_max: int = 0
    thread_actor_starts: int = 0
    thread_actor_crashes: int = 0
    slow_consumer_disconnects: int = 0
    heartbeat_timeouts: int = 0
    abuse_disconnects: int = 0
    broker_connected: bool = True
    lanes: Sequence[LaneReading] = ()


class _ReadingsCollector:
    """The series read at scrape time, with their help texts."""

    def __init__(self, read: Callable[[], Readings]) -> None:
        self._read = read

    def describe(self) -> Iterable[Metric]:
        # The names, so the registry refuses a clash with a counted series at registration.
        return self._families(Readings())

    def collect(self) -> Iterable[Metric]:
        return self._families(self._read())

    @staticmethod
    def _families(now: Readings) -> list[Metric]:
        def gauge(name: str, help_text: str, value: float) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, help_text, value=value)

        def counter(name: str, help_text: str, value: float) -> CounterMetricFamily:
            return CounterMetricFamily(name, help_text, value=value)

        families: list[Metric] = [
            gauge(
                "hub_sockets_open",
                "WebSocket connections open now, authenticated or still handshaking.",
                now.sockets_open,
            ),
            gauge(
                "hub_sessions_authenticated",
                "Authenticated WebSocket sessions now (admitted under the connection limits).",
                now.sessions_authenticated,
            ),
            gauge("hub_thread_actors", "Thread actors running now.", now.thread_actors),
            gauge(
                "hub_thread_inbox_depth_max",
                "Commands waiting in the fullest thread actor's inbox now.",
                now.thread_inbox_max,
            ),
            counter("hub_thread_actor_starts", "Thread actors started.", now.thread_actor_starts),
            counter(
                "hub_thread_actor_crashes",
                "Thread actors that crashed (their subscribers rejoined with since_seq).",
                now.thread_actor_crashes,
            ),
            counter(
                "hub_slow_consumer_disconnects",
                "Sockets closed with 4009: their outgoing queue overflowed.",
                now.slow_consumer_disconnects,
            ),
            counter(
                "hub_heartbeat_timeouts",
                "Sockets closed with 4000: no pong in time.",
                now.heartbeat_timeouts,
            ),
            counter(
                "hub_abuse_disconnects",
                "Sockets closed with 4008: too many invalid or refused frames.",
                now.abuse_disconnects,
            ),
        ]
        families.append(
            gauge(
                "hub_broker_connected",
                "1 while the cross-node broker (Redis) is reachable, or the hub runs alone; 0 "
                "while it is down and delivery across nodes falls back to polling.",
                1 if now.broker_connected else 0,
            )
        )
        depth = GaugeMetricFamily(
            "hub_storage_inbox_depth",
            "Write requests waiting in a storage lane's inbox now.",
            labels=["lane"],
        )
        connected = GaugeMetricFamily(
            "hub_storage_connected",
            "1 while a storage lane's write connection is up, else 0.",
            labels=["lane"],
        )
        failed = CounterMetricFamily(
            "hub_storage_batches_failed",
            "Storage batches that did not commit (refused, database lost, or a bug).",
            labels=["lane"],
        )
        reconnects = CounterMetricFamily(
            "hub_storage_reconnects", "Storage write connections re-established.", labels=["lane"]
        )
        for lane, reading in enumerate(now.lanes):
            label = [str(lane)]
            depth.add_metric(label, reading.inbox_depth)
            connected.add_metric(label, 1 if reading.connected else 0)
            failed.add_metric(label, reading.batches_failed)
            reconnects.add_metric(label, reading.reconnects)
        families += [depth, connected, failed, reconnects]
        return families


class Metrics:
    """Every counted series of one hub, in a registry of its own (see the module)."""

    def __init__(self, node_id: str = "") -> None:
        registry = self.registry = CollectorRegistry()
        node = Info("hub_node", "The node this process is (HUB_NODE_ID).", registry=registry)
        node.info({"node": node_id})
        ProcessCollector(registry=registry)  # process_cpu_seconds_total, RSS, open fds

        frames_in = Counter(
            "hub_frames_in_total",
            "WebSocket frames received, by protocol type; `invalid` for frames that did not "
            "decode, were binary or were over HUB_WS_MAX_FRAME.",
            ["type"],
            registry=registry,
        )
        self.frames_in = {cls: frames_in.labels(tag) for cls, tag in CLIENT_FRAME_TYPES.items()}
        self.frames_in_invalid = frames_in.labels("invalid")
        frames_out = Counter(
            "hub_frames_out_total",
            "Protocol frames handed to sockets (written, or queued for the writer), by type.",
            ["type"],
            registry=registry,
        )
        self.frames_out = {cls: frames_out.labels(tag) for cls, tag in SERVER_FRAME_TYPES.items()}

        self.messages_stored = Counter(
            "hub_messages_stored_total",
            "Messages committed (REST and WebSocket; repeated client_msg_ids not counted).",
            registry=registry,
        )
        self.send_to_commit = Histogram(
            "hub_send_commit_seconds",
            "From the moment the hub received a send (REST request or WebSocket frame) to the "
            "commit that stored it.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.commit_to_deliver = Histogram(
            "hub_commit_deliver_seconds",
            "From a message's commit to its frame being written or queued to every live "
            "subscriber of its thread on this node.",
            buckets=DELIVER_BUCKETS,
            registry=registry,
        )
        self.storage_batch_size = Histogram(
            "hub_storage_batch_size",
            "Requests per committed storage batch (group commit).",
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.storage_commit = Histogram(
            "hub_storage_commit_seconds",
            "Time to run and commit one storage batch.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )

        rate_limited = Counter(
            "hub_rate_limited_total",
            "Requests refused by a per-user rate limit (REST 429, WebSocket rate_limited), by "
            "door and budget.",
            ["door", "class"],
            registry=registry,
        )
        self.rate_limited = {key: rate_limited.labels(*key) for key in RATE_LIMITED_DOORS}
        ws_refused = Counter(
            "hub_ws_refused_total",
            "WebSocket connections refused before becoming a session, by reason; "
            "max_connections, shutting_down and per_user_limit are the connection limits.",
            ["reason"],
            registry=registry,
        )
        self.ws_refused = {reason: ws_refused.labels(reason) for reason in WS_REFUSALS}

        self.broker_publish_failures = Counter(
            "hub_broker_publish_failures_total",
            "Events not handed to the broker (it was down, its queue full, or the publish "
            "failed); lost messages are repaired from the database by seq.",
            registry=registry,
        )
        self.broker_reconnects = Counter(
            "hub_broker_reconnects_total",
            "Times the broker connection (Redis) was re-established after a failure.",
            registry=registry,
        )
        self.gap_repairs = Counter(
            "hub_gap_repairs_total",
            "Seq gaps in a thread's delivery filled from the database (a publish lost, or a "
            "message committed elsewhere found by the seq check).",
            registry=registry,
        )
        self.fallback_polls = Counter(
            "hub_fallback_polls_total",
            "Seq checks of this node's live threads against the database run while the broker "
            "was down (cross-node delivery by polling).",
            registry=registry,
        )
        self.notification_deliveries = Counter(
            "hub_notification_deliveries_total",
            "Delivery attempts of notifications by channel (in_app, email, webhook) and outcome: "
            "delivered, retry (failed, tried again later), held (quiet hours), dead (an "
            "operator's to retry: hub notifications dead-letter).",
            ["channel", "outcome"],
            registry=registry,
        )
        self.notification_reminders = Counter(
            "hub_notification_reminders_total",
            "Reminders sent to organizations that have not acknowledged a message.",
            registry=registry,
        )
        retention_groups = Counter(
            "hub_retention_groups_total",
            "Groups the retention actor archived or purged (their wedding's days were up).",
            ["action"],
            registry=registry,
        )
        self.retention_archived = retention_groups.labels("archive")
        self.retention_purged = retention_groups.labels("purge")
        self.retention_audit_rows_deleted = Counter(
            "hub_retention_audit_rows_deleted_total",
            "Audit rows deleted for being older than HUB_AUDIT_RETENTION_DAYS.",
            registry=registry,
        )
        self.retention_failures = Counter(
            "hub_retention_failures_total",
            "Retention passes that failed (the database, the blob store); each is tried again "
            "at the next interval.",
            registry=registry,
        )

        self._http_requests = Counter(
            "hub_http_requests_total",
            "REST requests answered, by route template, method and status.",
            ["route", "method", "status"],
            registry=registry,
        )
        self._http_seconds = Histogram(
            "hub_http_request_seconds",
            "Time from a REST request's start to its answer, by route template and method.",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self._http_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def read_at_scrape(self, read: Callable[[], Readings]) -> None:
        """Have every scrape call `read` for the series that are read, not counted."""
        self.registry.register(_ReadingsCollector(read))

    def http_request(self, route: str | None, method: str, status: int, seconds: float) -> None:
        """Count one answered REST request; `route` is the matched rule's template (None for
        a request no rule matched)."""
        key = (route or UNMATCHED_ROUTE, method if method in HTTP_METHODS else "other", status)
        children = self._http_children.get(key)
        if children is None:
            route_label, method_label, _ = key
            children = self._http_children[key] = (
                self._http_requests.labels(route_label, method_label, str(status)),
                self._http_seconds.labels(route_label, method_label),
            )
        count, latency = children
        count.inc()
        latency.observe(seconds)

    def exposition(self, accept: str | None) -> tuple[bytes, str]:
        """The scrape's body and content type, in the format the scraper's `Accept` asks for
        (Prometheus text 0.0.4 unless it asks for OpenMetrics or a newer text format), as
        prometheus_client's own handlers choose."""
        encode, content_type = choose_encoder(accept or "")
        return encode(self.registry), content_type
