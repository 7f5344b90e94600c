"""Who is calling: JWT verification for every entry (REST and WebSocket), and dev token minting.

The identity provider is external; the hub trusts a token's claims once its signature, expiry and
(when configured) audience and issuer check out. HS256 with HUB_JWT_SECRET by default; RS256 or
ES256 when HUB_JWT_PUBLIC_KEY names a PEM file.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import jwt

from hub.config import Settings
from hub.errors import Unauthorized

ROLES = ("owner", "admin", "manager", "vendor")
_ASYMMETRIC = ["RS256", "ES256"]


@dataclass(frozen=True, slots=True)
class Principal:
    """A verified caller."""

    user_id: UUID
    org_id: UUID
    role: str
    name: str
    expires_at: float  # Unix time

    @property
    def expires(self) -> datetime:
        return datetime.fromtimestamp(self.expires_at, UTC)


class TokenExpired(Unauthorized):
    pass


class TokenVerifier:
    """Verifies tokens against the configured key; built once at startup.

    A verified token is remembered (bounded LRU, never past its own expiry): REST clients send
    the same token on every request, and checking its signature again each time was a visible
    share of a request's CPU in the REST bench."""

    def __init__(self, settings: Settings, *, cache_size: int = 10_000) -> None:
        self._cache: OrderedDict[str, Principal] = OrderedDict()
        self._cache_size = cache_size
        if settings.jwt_public_key_file is not None:
            self._key: Any = settings.jwt_public_key_file.read_bytes()
            self._algorithms = _ASYMMETRIC
        else:
            self._key = settings.jwt_secret
            self._algorithms = ["HS256"]
        self._audience = settings.jwt_audience
        self._issuer = settings.jwt_issuer

    def verify(self, token: str) -> Principal:
        cached = self._cache.get(token)
        if cached is not None:
            if cached.expires_at > time.time():
                self._cache.move_to_end(token)
                return cached
            del self._cache[token]
        principal = self._verify(token)
        self._cache[token] = principal
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return principal

    def _verify(self, token: str) -> Principal:
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=self._algorithms,
                audience=self._audience,
                issuer=self._issuer,
                options={
                    "require": ["sub", "exp", "org_id", "role"],
                    "verify_aud": self._audience is not None,
                    "verify_iss": self._issuer is not None,
                },
                leeway=5,
            )
        except jwt.ExpiredSignatureError:
            raise TokenExpired("the token has expired") from None
        except jwt.InvalidTokenError as exc:
            raise Unauthorized(f"invalid token: {exc}") from None
        return principal_from_claims(claims)


def principal_from_claims(claims: dict[str, Any]) -> Principal:
    try:
        user_id = UUID(str(claims["sub"]))
        org_id = UUID(str(claims["org_id"]))
    except ValueError:
        raise Unauthorized("invalid token: sub and org_id must be UUIDs") from None
    role = claims.get("role")
    if role not in ROLES:
        raise Unauthorized(f"invalid token: role must be one of {', '.join(ROLES)}")
    name = str(claims.get("name") or f"user {str(user_id)[:8]}")[:200]
    if "\x00" in name:
        # PostgreSQL cannot store it as the user's display name (hub.validation).
        raise Unauthorized("invalid token: the name claim must not contain the NUL character")
    return Principal(user_id, org_id, role, name, float(claims["exp"]))


def issue_token(
    settings: Settings,
    *,
    user_id: UUID,
    org_id: UUID,
    role: str,
    name: str | None = None,
    ttl_s: int = 3600,
) -> str:
    """A signed HS256 token, for development, tests and the bench."""
    if settings.jwt_public_key_file is not None:
        raise Unauthorized(
            "HUB_JWT_PUBLIC_KEY is set: tokens come from your identity provider, not `hub token`"
        )
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": str(user_id),
        "org_id": str(org_id),
        "role": role,
        "name": name or f"user {str(user_id)[:8]}",
        "iat": now,
        "exp": now + ttl_s,
    }
    if settings.jwt_audience:
        claims["aud"] = settings.jwt_audience
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    return jwt.encode(claims, settings.jwt_secret, algorithm="HS256")
