"""An organization's webhooks: `POST`/`GET /webhooks`, `DELETE /webhooks/{id}`.

Registered by the organization's owner or admin, for a venue's own system or an SMS or push
provider: each notification of the organization's users (of the events chosen) is POSTed to the
URL, signed with the secret shown once here (`hub.notifications.webhooks`). The URL is checked
against the SSRF rules when it is registered, and again, with the addresses it resolves to, at
each delivery (`hub.notifications.addresses`).
"""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit

from quart import Blueprint, Response, current_app
from quart_schema import validate_request

from hub.config import Settings
from hub.errors import Conflict, Forbidden
from hub.http.identity import audit, current_principal, current_settings, current_storage
from hub.http.openapi import errors, responds
from hub.http.params import path_id
from hub.http.schemas import WebhookIn, WebhookList, WebhookOut
from hub.notifications.addresses import check_webhook_url
from hub.notifications.webhooks import new_secret
from hub.storage.webhooks import (
    WEBHOOKS_PER_ORGANIZATION,
    WebhookRecord,
    create_webhook,
    delete_webhook,
    secret_aad,
    webhooks_of,
)

blueprint = Blueprint("webhooks", __name__)
_MANAGERS = ("owner", "admin")


def hub_origins(settings: Settings, *listening: str) -> frozenset[str]:
    """The hub's own origins, which no webhook may target: where people reach it, where it is
    told to listen, and `listening`, the URLs it does listen on (known once its servers have
    started: a port of 0 is the system's choice)."""
    origins = {f"http://{settings.http_host}:{settings.http_port}"}
    origins.add(f"http://{settings.ws_host}:{settings.ws_port}")
    for public in (settings.public_url, settings.ws_public_url, *listening):
        if public:
            parts = urlsplit(public.replace("wss://", "https://").replace("ws://", "http://"))
            origins.add(f"{parts.scheme}://{parts.netloc}")
    return frozenset(origins)


def own_origins() -> frozenset[str]:
    """This running hub's origins (`run_hub` records them once it listens)."""
    hub = current_app.extensions["hub"]
    return hub.get("own_origins") or hub_origins(hub["settings"])


def _manager() -> None:
    principal = current_principal()
    if principal.role not in _MANAGERS:
        raise Forbidden(f"role {principal.role} may not manage webhooks")


def _out(record: WebhookRecord, secret: str | None = None) -> WebhookOut:
    return WebhookOut(
        id=record.id,
        url=record.url,
        events=list(record.events),
        created_at=record.created_at,
        secret=secret,
    )


@blueprint.post("/webhooks")
@errors(400, 403, 409, 422)
@responds(WebhookOut, 201)
@validate_request(WebhookIn)
async def register(data: WebhookIn) -> tuple[WebhookOut, int]:
    """Register a webhook for the caller's organization (owner or admin). 201 with its
    `secret`, shown this once. 400 when the URL is one the hub will not send to (the reason
    named); 409 past 20 webhooks, or for a URL one of them already sends to."""
    _manager()
    settings = current_settings()
    check_webhook_url(data.url, allow_hosts=settings.webhook_allow_hosts, hub_origins=own_origins())
    principal = current_principal()
    storage = current_storage()
    existing = await storage.read(webhooks_of(principal.org_id))
    if len(existing) >= WEBHOOKS_PER_ORGANIZATION:
        raise Conflict(f"an organization has at most {WEBHOOKS_PER_ORGANIZATION} webhooks")
    same = next((hook for hook in existing if hook.url == data.url), None)
    if same is not None:
        # Two receivers at one URL would get every delivery twice.
        raise Conflict(f"webhook {same.id} already sends to {data.url}; delete it first")
    webhook_id = uuid.uuid4()
    secret = new_secret()
    ring = await storage.sealing.ring_for(principal.org_id)
    sealed = ring.seal_text(secret_aad(webhook_id), secret)
    events = sorted(set(data.events))
    entry = audit(
        "webhook.create",
        "webhook",
        webhook_id,
        group_id=None,
        details={"url": data.url, "events": events},
    )
    record = await storage.write(
        lambda now: create_webhook(
            WebhookRecord(
                id=webhook_id,
                organization_id=principal.org_id,
                url=data.url,
                events=events,
                secret_sealed=sealed,
                created_by=principal.user_id,
                created_at=now,
            )
        ),
        audit=[entry],
    )
    return _out(record, secret), 201


@blueprint.get("/webhooks")
@errors(403)
@responds(WebhookList)
async def list_webhooks() -> WebhookList:
    """The caller's organization's webhooks (owner or admin), without their secrets."""
    _manager()
    records = await current_storage().read(webhooks_of(current_principal().org_id))
    return WebhookList(webhooks=[_out(r) for r in records])


@blueprint.delete("/webhooks/<webhook_id>")
@errors(403, 404, 422)
async def remove(webhook_id: str) -> Response:
    """Delete a webhook of the caller's organization (owner or admin): nothing more is sent
    to it, deliveries on their way included. 204."""
    _manager()
    wid = path_id("webhook_id", webhook_id)
    principal = current_principal()
    entry = audit("webhook.delete", "webhook", wid, group_id=None)
    await current_storage().write(
        lambda now: delete_webhook(wid, principal.org_id, now), audit=[entry]
    )
    return Response(status=204)
