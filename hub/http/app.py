"""The REST application: one Quart-Trio app, route families in their own modules.

    service   /healthz, /readyz at the root; /healthz, /docs and /openapi.json (quart-schema)
              under the base; all public
    metrics   /metrics at the root (public unless HUB_METRICS_TOKEN), and every request
              counted by route template, method and status
    me        /me, the caller as the hub sees their token; /me/organization/users, its people
    notifications  /me/notifications (the in-app inbox), /me/notifications/read
    preferences  /me/notification-preferences, /threads/{thread_id}/mute
    webhooks  /webhooks (an organization's receivers of its notifications)
    groups    /groups, /groups/{group_id}
    escalation  /groups/{group_id}/escalation-policy (how unconfirmed messages are reminded)
    retention  /groups/{group_id}/retention (when the wedding's data is archived and deleted),
              /groups/{group_id}/legal-hold
    members   invitations (invite, list, accept, decline) and removal
    threads   /threads, /threads/{thread_id} (read, update, archive)
    messages  POST /threads/{thread_id}, through the message router
    edits     PUT/DELETE /threads/{thread_id}/messages/{seq} (a sender's edit, a deletion)
    acknowledgements  POST /threads/{thread_id}/messages/{seq}/ack, and the board of who has
              confirmed (/threads/{thread_id}/messages/{seq}/acknowledgements)
    attachments  POST /threads/{thread_id}/attachments (streamed), /attachments/{id}
              (download, ranges), /attachments/{id}/thumbnail, /attachments/{id}/info
    audit     /audit
    export    /me/export, /me/organization/export (a zip of everything held about the caller,
              or their organization for its owner; streamed)
    webclient /, /app/* (the web client's page and assets; public) and /app/config.json

Cross-cutting pieces run around every route: `identity` (JWT, identity upsert, rate limits),
`errors` (the one JSON error shape), `openapi` (schema generation); and around the whole app,
at the ASGI interface, `framing` (ambiguous request framing, bodies the app left unread).
"""

from __future__ import annotations

import time
from pathlib import Path

from quart_trio import QuartTrio

from hub.attachments.blobstore import BlobStore
from hub.attachments.localblobs import LocalBlobs
from hub.attachments.service import Attachments, Limits
from hub.auth import TokenVerifier
from hub.config import Settings
from hub.http import (
    acknowledgements,
    attachments,
    audit,
    bodies,
    edits,
    erasure,
    errors,
    escalation,
    export,
    framing,
    groups,
    identity,
    me,
    members,
    messages,
    metrics,
    notifications,
    openapi,
    preferences,
    retention,
    service,
    threads,
    webclient,
    webhooks,
)
from hub.identities import Identities
from hub.messaging import DirectRouter, MessageRouter
from hub.metrics import Metrics
from hub.storage import Storage

BASE_PATH = "/api/vendor-connections"
MAX_BODY_BYTES = 1024 * 1024


def create_app(
    settings: Settings,
    storage: Storage,
    verifier: TokenVerifier,
    *,
    router: MessageRouter | None = None,
    readiness: service.Readiness | None = None,
    hub_metrics: Metrics | None = None,
    blobs: BlobStore | None = None,
) -> QuartTrio:
    """The app; `router` is how messages are posted (the realtime supervisor when it runs, so
    REST-posted messages reach live subscribers; storing directly otherwise); `readiness` tells
    `/readyz` when the hub is shutting down; `hub_metrics` is what `/metrics` serves and
    requests are counted in (the hub's; one of the app's own without it); `blobs` is where
    attachment contents go (a local directory at HUB_BLOB_URL without it)."""
    app = QuartTrio(__name__, static_folder=None)
    app.asgi_app = framing.FramingGuard(  # type: ignore[method-assign]
        app.asgi_app, answer_timeout_s=settings.http_idle_timeout_s, streamed=_is_upload
    )
    if blobs is None:
        blobs = LocalBlobs.prepared(Path(settings.blob_url))
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.config["JSON_SORT_KEYS"] = False
    app.extensions["hub"] = {
        "settings": settings,
        "storage": storage,
        "verifier": verifier,
        "router": router or DirectRouter(storage),
        "identities": Identities(storage),
        "rate_limiters": identity.rate_limiters(
            {
                "read": settings.rate_read,
                "write": settings.rate_write,
                "send": settings.rate_send,
                "upload": settings.rate_upload,
                "export": settings.rate_export,
            }
        ),
        "attachments": Attachments(
            storage,
            blobs,
            Limits(settings.max_file_size, settings.org_storage_quota_bytes),
        ),
        "base_path": BASE_PATH,
        "readiness": readiness or service.Readiness(),
        "metrics": hub_metrics if hub_metrics is not None else Metrics(settings.node_id),
        "started_at": time.monotonic(),
        "web_assets": webclient.load_assets(),
        "ws_url": None,  # set by run_hub once the WebSocket server listens
    }
    metrics.install(app)  # first: its hooks enclose every other one
    openapi.install(app, f"{BASE_PATH}/openapi.json")
    bodies.install(app)
    errors.install(app)
    identity.install(app)
    app.register_blueprint(service.root)
    app.register_blueprint(metrics.blueprint)
    app.register_blueprint(webclient.blueprint)
    families = (service, me, notifications, preferences, webhooks, groups, members, threads)
    talk = (messages, edits, acknowledgements, attachments)
    for family in (*families, escalation, retention, *talk, audit, export, erasure):
        app.register_blueprint(family.blueprint, url_prefix=BASE_PATH)
    return app


def _is_upload(scope: dict) -> bool:
    """Requests whose body the upload view streams itself (hub.http.framing.StreamedBody)."""
    path = scope.get("path", "")
    return (
        scope.get("method") == "POST"
        and path.startswith(BASE_PATH)
        and attachments.UPLOAD_PATH.fullmatch(path[len(BASE_PATH) :]) is not None
    )
