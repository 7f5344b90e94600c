"""Who is calling, and how much they may still call: runs before every REST request.

Authentication: every endpoint except the public ones (health, OpenAPI, docs) needs a bearer JWT,
verified by `hub.auth`. The identity provider is external, so users and organizations are created
or refreshed from the token's claims on first sight; a bounded, short-lived memory of identities
seen recently keeps that from being a database write on every request.

Rate limits: one token bucket per user and route class (reads, writes, sends, uploads,
exports), so a client flooding reads cannot starve its own message sends. Every authenticated
answer carries `RateLimit-Limit/Remaining/Reset`; a refusal is a 429 with `Retry-After`.
"""

from __future__ import annotations

import math
from typing import Any
from uuid import UUID

from quart import Response, current_app, g, request
from quart_trio import QuartTrio

from hub.auth import Principal, TokenVerifier
from hub.config import Settings
from hub.errors import RateLimited, Unauthorized
from hub.http.webclient import PUBLIC_ENDPOINTS as WEB_CLIENT_ENDPOINTS
from hub.messaging import MessageRouter
from hub.ratelimit import Budget, RateLimiter
from hub.storage import Storage
from hub.storage.records import AuditEntry

PUBLIC_ENDPOINTS = {
    "health.liveness",
    "health.readiness",
    "service.healthz",
    "service.docs",
    "openapi",
    "metrics.scrape",  # its own bearer token, when HUB_METRICS_TOKEN is set
    *WEB_CLIENT_ENDPOINTS,  # the page and its assets; the browser authenticates its own calls
}
SEND_ENDPOINTS = {"messages.send_message"}
UPLOAD_ENDPOINTS = {"attachments.upload"}
# Each reads everything its subject holds: a class of its own, with a small budget.
EXPORT_ENDPOINTS = {"export.export_me", "export.export_organization"}
_USER_AGENT_MAX = 500


def rate_limiters(settings_rates: dict[str, tuple[float, float]]) -> dict[str, RateLimiter]:
    return {name: RateLimiter(Budget(*rate)) for name, rate in settings_rates.items()}


def route_class(endpoint: str, method: str) -> str:
    if endpoint in SEND_ENDPOINTS and method == "POST":
        return "send"
    if endpoint in UPLOAD_ENDPOINTS and method == "POST":
        return "upload"
    if endpoint in EXPORT_ENDPOINTS:
        return "export"
    return "read" if method in ("GET", "HEAD", "OPTIONS") else "write"


def install(app: QuartTrio) -> None:
    @app.before_request
    async def authenticate() -> None:
        endpoint = request.endpoint
        if endpoint is None or endpoint in PUBLIC_ENDPOINTS:
            return  # unknown routes answer 404/405 without asking who is calling
        hub = current_app.extensions["hub"]
        principal = _verify(hub["verifier"])
        g.principal = principal
        kind = route_class(endpoint, request.method)
        decision = hub["rate_limiters"][kind].take((principal.user_id, kind))
        g.rate_decision = decision
        if not decision.allowed:
            hub["metrics"].rate_limited["rest", kind].inc()
            raise RateLimited(
                f"too many {kind} requests; retry in {decision.retry_after_s:.1f}s",
                retry_after_s=decision.retry_after_s,
            )
        await hub["identities"].ensure(principal)

    @app.after_request
    async def rate_limit_headers(response: Response) -> Response:
        decision = g.get("rate_decision")
        if decision is not None:
            response.headers["RateLimit-Limit"] = str(decision.limit)
            response.headers["RateLimit-Remaining"] = str(decision.remaining)
            response.headers["RateLimit-Reset"] = str(math.ceil(decision.reset_s))
        return response


def _verify(verifier: TokenVerifier) -> Principal:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("a bearer token is required (Authorization: Bearer <JWT>)")
    return verifier.verify(token.strip())


def current_principal() -> Principal:
    """The verified caller of this request (set before any protected view runs)."""
    return g.principal


def current_storage() -> Storage:
    return current_app.extensions["hub"]["storage"]


def current_settings() -> Settings:
    return current_app.extensions["hub"]["settings"]


def current_router() -> MessageRouter:
    """How messages are posted: the realtime supervisor in a running hub."""
    return current_app.extensions["hub"]["router"]


def audit(
    action: str,
    target_type: str,
    target_id: object,
    *,
    group_id: UUID | None,
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    """An audit row for the current request: who, from where, with which client."""
    principal = current_principal()
    user_agent = request.headers.get("User-Agent")
    return AuditEntry(
        action=action,
        target_type=target_type,
        target_id=None if target_id is None else str(target_id),
        actor_user_id=principal.user_id,
        actor_org_id=principal.org_id,
        group_id=group_id,
        ip=request.remote_addr,
        user_agent=user_agent[:_USER_AGENT_MAX] if user_agent else None,
        details=details or {},
    )
