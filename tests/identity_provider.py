"""Tokens as an identity provider would sign them (RS256, ES256), and the forgeries tried on a
hub that trusts one: for tests that configure HUB_JWT_PUBLIC_KEY."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from typing import Any

from cryptography.hazmat.primitives import serialization


def public_pem(private_key: Any) -> bytes:
    return private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def idp_claims(**changes: Any) -> dict[str, Any]:
    claims = {
        "sub": str(uuid.uuid4()),
        "org_id": str(uuid.uuid4()),
        "role": "admin",
        "name": "Ida Provider",
        "exp": int(time.time()) + 600,
    }
    claims.update(changes)
    return claims


def hs256_with_key(claims: dict[str, Any], key: bytes) -> str:
    """An HS256 token whose HMAC key is `key`, built by hand: PyJWT refuses to sign with a PEM."""

    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = part(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = part(json.dumps(claims).encode())
    mac = hmac.new(key, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{part(mac)}"
