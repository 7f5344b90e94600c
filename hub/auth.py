"""Who is calling: JWT verification for every entry (REST and WebSocket), and dev token minting.

The identity provider is external; the hub trusts a token's claims once its signature, expiry and
(when configured) audience and issuer check out. HS256 with HUB_JWT_SECRET by default; when
HUB_JWT_PUBLIC_KEY names a PEM file, only the algorithm its key is for: RS256 for an RSA key,
ES256 for an EC P-256 key.
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import jwt
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from hub.config import Settings
from hub.errors import ConfigError, Unauthorized

ROLES = ("owner", "admin", "manager", "vendor")
IDENTITY_PROVIDER_TOKENS = (
    "HUB_JWT_PUBLIC_KEY is set, so the hub accepts only tokens your identity provider signs "
    "(RS256/ES256) and cannot mint one: `hub token` signs with HUB_JWT_SECRET. Get a token "
    "from the identity provider, or unset HUB_JWT_PUBLIC_KEY to use development tokens"
)


@dataclass(frozen=True, slots=True)
class Principal:
    """A verified caller."""

    user_id: UUID
    org_id: UUID
    role: str
    name: str
    expires_at: float  # Unix time
    # The `email` claim when it holds an address (where notification e-mail goes), else None.
    email: str | None = None

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
            self._key: Any
            self._key, algorithm = load_public_key(settings.jwt_public_key_file)
            self._algorithms = [algorithm]
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
        except jwt.PyJWTError:
            # Not an InvalidTokenError, such as InvalidKeyError: still the token's fault (the key
            # was loaded and checked at startup), so a refusal, never a 500.
            raise Unauthorized("invalid token: it cannot be verified with the hub's key") from None
        return principal_from_claims(claims)


def load_public_key(path: Path) -> tuple[Any, str]:
    """The identity provider's key from a PEM file (a public key or a certificate) and the one
    algorithm it verifies.

    Checked once at startup, so a wrong file stops `hub serve` with a line naming it instead of
    refusing every token. Allowing one algorithm per key also means a token whose header names
    another (ES256 against an RSA key, HS256 keyed with the public PEM) is refused outright."""
    try:
        data = path.read_bytes()
        if b"-----BEGIN CERTIFICATE-----" in data:
            key: Any = x509.load_pem_x509_certificate(data).public_key()
        else:
            key = load_pem_public_key(data)
    except OSError as exc:
        raise ConfigError(f"HUB_JWT_PUBLIC_KEY: cannot read {path}: {exc.strerror}") from None
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ConfigError(
            f"HUB_JWT_PUBLIC_KEY: {path} is not a PEM public key or certificate"
        ) from None
    if isinstance(key, rsa.RSAPublicKey):
        return key, "RS256"
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return key, "ES256"
    raise ConfigError(
        f"HUB_JWT_PUBLIC_KEY: {path} holds a {type(key).__name__.removeprefix('_')}; the hub "
        "verifies RS256 (an RSA key) or ES256 (an EC key on P-256)"
    )


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
    return Principal(user_id, org_id, role, name, float(claims["exp"]), _email(claims.get("email")))


_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]{1,253}")


def _email(claim: Any) -> str | None:
    """An address from the `email` claim; anything else (absent, not text, not one address,
    too long) is no address: notifications then skip e-mail for the user rather than the hub
    refusing a token its identity provider signed."""
    if not isinstance(claim, str) or len(claim) > 254 or _EMAIL.fullmatch(claim) is None:
        return None
    return claim


def issue_token(
    settings: Settings,
    *,
    user_id: UUID,
    org_id: UUID,
    role: str,
    name: str | None = None,
    ttl_s: int = 3600,
    email: str | None = None,
) -> str:
    """A signed HS256 token, for development, tests and the bench.

    The hub holds only the public half of an identity provider's key, so with HUB_JWT_PUBLIC_KEY
    set it cannot mint a token it would accept: ConfigError saying so."""
    if settings.jwt_public_key_file is not None:
        raise ConfigError(IDENTITY_PROVIDER_TOKENS)
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
    if email is not None:
        claims["email"] = email
    if settings.jwt_audience:
        claims["aud"] = settings.jwt_audience
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    return jwt.encode(claims, settings.jwt_secret, algorithm="HS256")
