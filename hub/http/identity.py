"""Who is calling, and how much they may still call: runs before every REST request.

Authentication: every endpoint except the public ones (health, OpenAPI, docs) needs a bearer JWT,
verified by `hub.auth`. The identity provider is external, so users and organizations are created
or refreshed from the token's claims on first sight; a bounded, short-lived memory of identities
seen recently keeps that from being a database write on every request.

Rate limits: one token bucket per user and route class (reads, writes, message sends), so a
client flooding reads cannot starve its own message sends. Every authenticated answer carries
`RateLimit-Limit/Remaining/Reset`; a refusal is a 429 with `Retry-After`.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any
from uuid import UUID

from quart import Response, current_app, g, request
from quart_trio import QuartTrio

from hub.auth import Principal, TokenVerifier
from hub.errors import RateLimited, Unauthorized
from hub.ratelimit import Budget, RateLimiter
from hub.storage import Storage
from hub.storage import repository as repo
from hub.storage.records import AuditEntry

PUBLIC_ENDPOINTS = {"service.healthz", "service.docs", "openapi"}
SEND_ENDPOINTS = {"messages.send_message"}
_USER_AGENT_MAX = 500


class IdentityCache:
    """Identities (user, organization, role, name) upserted recently, least recently seen first.

    A hit skips the upsert; an entry expires after `ttl_s` so `last_seen_at` and a renamed
    organization still reach the database now and then. Bounded: the oldest entry goes first.
    """

    def __init__(
        self,
        *,
        max_entries: int = 10_000,
        ttl_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._seen: OrderedDict[tuple[Any, ...], float] = OrderedDict()
        self._max_entries = max_entries
        self._ttl_s = ttl_s
        self._clock = clock

    def __len__(self) -> int:
        return len(self._seen)

    def fresh(self, principal: Principal) -> bool:
        key = _identity_key(principal)
        seen_at = self._seen.get(key)
        if seen_at is None or self._clock() - seen_at > self._ttl_s:
            return False
        self._seen.move_to_end(key)
        return True

    def remember(self, principal: Principal) -> None:
        key = _identity_key(principal)
        self._seen[key] = self._clock()
        self._seen.move_to_end(key)
        while len(self._seen) > self._max_entries:
            self._seen.popitem(last=False)


def _identity_key(principal: Principal) -> tuple[Any, ...]:
    return (principal.user_id, principal.org_id, principal.role, principal.name)


def rate_limiters(settings_rates: dict[str, tuple[float, float]]) -> dict[str, RateLimiter]:
    return {name: RateLimiter(Budget(*rate)) for name, rate in settings_rates.items()}


def route_class(endpoint: str, method: str) -> str:
    if endpoint in SEND_ENDPOINTS and method == "POST":
        return "send"
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
            raise RateLimited(
                f"too many {kind} requests; retry in {decision.retry_after_s:.1f}s",
                retry_after_s=decision.retry_after_s,
            )
        cache: IdentityCache = hub["identities"]
        if not cache.fresh(principal):
            await _upsert(hub["storage"], principal)
            cache.remember(principal)

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


async def _upsert(storage: Storage, principal: Principal) -> None:
    await storage.write(
        lambda now: repo.upsert_identity(
            user_id=principal.user_id,
            organization_id=principal.org_id,
            username=str(principal.user_id),
            display_name=principal.name,
            role=principal.role,
            now=now,
        )
    )


def current_principal() -> Principal:
    """The verified caller of this request (set before any protected view runs)."""
    return g.principal


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
