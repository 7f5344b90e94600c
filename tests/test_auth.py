"""Token verification, including its cache: a remembered token never outlives its expiry."""

from __future__ import annotations

import time
import uuid
from datetime import datetime

import jwt
import pytest

from hub.auth import TokenExpired, TokenVerifier, issue_token
from hub.errors import Unauthorized
from tests.conftest import make_settings


@pytest.fixture
def settings(tmp_path):
    return make_settings(f"sqlite:///{tmp_path}/hub.db", tmp_path / "var")


def test_a_cached_token_is_refused_once_it_expires(settings, monkeypatch):
    verifier = TokenVerifier(settings)
    token = issue_token(
        settings, user_id=uuid.uuid4(), org_id=uuid.uuid4(), role="vendor", ttl_s=60
    )
    assert verifier.verify(token).role == "vendor"

    # An hour later, for the cache (time.time) and for PyJWT (datetime.now) alike.
    later = time.time() + 3600
    monkeypatch.setattr(time, "time", lambda: later)

    class Later(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime.fromtimestamp(later, tz)

    monkeypatch.setattr(jwt.api_jwt, "datetime", Later)

    with pytest.raises(TokenExpired):
        verifier.verify(token)


def test_a_token_signed_with_another_secret_is_refused(settings):
    claims = {
        "sub": str(uuid.uuid4()),
        "org_id": str(uuid.uuid4()),
        "role": "owner",
        "exp": int(time.time()) + 60,
    }
    forged = jwt.encode(claims, "not-the-hub-secret-" + "y" * 30, algorithm="HS256")

    with pytest.raises(Unauthorized, match="invalid token"):
        TokenVerifier(settings).verify(forged)


def test_an_unsigned_token_is_refused(settings):
    claims = {
        "sub": str(uuid.uuid4()),
        "org_id": str(uuid.uuid4()),
        "role": "owner",
        "exp": int(time.time()) + 60,
    }
    unsigned = jwt.encode(claims, None, algorithm="none")

    with pytest.raises(Unauthorized):
        TokenVerifier(settings).verify(unsigned)


def test_claims_become_the_principal(settings):
    user, org = uuid.uuid4(), uuid.uuid4()
    token = issue_token(settings, user_id=user, org_id=org, role="manager", name="Rae")

    principal = TokenVerifier(settings).verify(token)

    assert (principal.user_id, principal.org_id, principal.role, principal.name) == (
        user,
        org,
        "manager",
        "Rae",
    )
