"""Authentication: who gets in, who is turned away, and how identities reach the database."""

from __future__ import annotations

import time
import uuid

import jwt

from hub.auth import issue_token
from hub.storage.identities import get_user
from tests.factories import Member


async def test_a_request_without_a_token_is_401_with_www_authenticate(api):
    reply = await api.get("/groups")

    assert reply.status == 401
    assert reply.error["code"] == "unauthorized"
    assert reply.headers["WWW-Authenticate"].startswith("Bearer")


async def test_an_expired_token_is_401_saying_it_expired(api, settings):
    claims = {
        "sub": str(uuid.uuid4()),
        "org_id": str(uuid.uuid4()),
        "role": "owner",
        "exp": int(time.time()) - 3600,
    }
    token = jwt.encode(claims, settings.jwt_secret, algorithm="HS256")

    reply = await api.get("/groups", headers={"Authorization": f"Bearer {token}"})

    assert reply.status == 401
    assert "expired" in reply.error["message"]
    assert 'error="invalid_token"' in reply.headers["WWW-Authenticate"]


async def test_a_token_signed_with_another_secret_is_refused(api):
    claims = {
        "sub": str(uuid.uuid4()),
        "org_id": str(uuid.uuid4()),
        "role": "owner",
        "exp": int(time.time()) + 3600,
    }
    forged = jwt.encode(claims, "attacker-secret-" + "y" * 40, algorithm="HS256")

    reply = await api.get("/groups", headers={"Authorization": f"Bearer {forged}"})

    assert reply.status == 401
    assert reply.error["code"] == "unauthorized"


async def test_an_unsigned_token_is_refused(api):
    claims = {"sub": str(uuid.uuid4()), "org_id": str(uuid.uuid4()), "role": "owner"}
    unsigned = jwt.encode({**claims, "exp": int(time.time()) + 60}, None, algorithm="none")

    reply = await api.get("/groups", headers={"Authorization": f"Bearer {unsigned}"})

    assert reply.status == 401


async def test_a_token_with_an_unknown_role_is_refused(api, settings):
    claims = {
        "sub": str(uuid.uuid4()),
        "org_id": str(uuid.uuid4()),
        "role": "superuser",
        "exp": int(time.time()) + 60,
    }
    token = jwt.encode(claims, settings.jwt_secret, algorithm="HS256")

    reply = await api.get("/groups", headers={"Authorization": f"Bearer {token}"})

    assert reply.status == 401
    assert "role" in reply.error["message"]


async def test_basic_credentials_are_not_a_bearer_token(api):
    reply = await api.get("/groups", headers={"Authorization": "Basic dXNlcjpwYXNz"})

    assert reply.status == 401


async def test_health_openapi_and_docs_need_no_token(api):
    assert (await api.get("/healthz")).status == 200
    assert (await api.get("/openapi.json")).status == 200
    response = await api.client.get("/api/vendor-connections/docs")
    assert response.status_code == 200


async def test_first_request_creates_the_user_and_organization_from_the_claims(
    api, storage, settings
):
    user_id, org_id = uuid.uuid4(), uuid.uuid4()
    token = issue_token(settings, user_id=user_id, org_id=org_id, role="admin", name="Ada Admin")

    reply = await api.get("/groups", headers={"Authorization": f"Bearer {token}"})

    assert reply.status == 200
    user = await storage.read(get_user(user_id))
    assert (user.organization_id, user.role, user.display_name) == (org_id, "admin", "Ada Admin")


async def test_a_changed_role_in_a_new_token_is_written_through(api, storage, settings):
    user_id, org_id = uuid.uuid4(), uuid.uuid4()
    for role in ("vendor", "manager"):
        token = issue_token(settings, user_id=user_id, org_id=org_id, role=role)
        assert (
            await api.get("/groups", headers={"Authorization": f"Bearer {token}"})
        ).status == 200

    assert (await storage.read(get_user(user_id))).role == "manager"


async def test_repeated_requests_of_a_known_identity_do_not_write(api, storage, settings):
    caller = Member(*_principal_and_token(settings))
    await api.get("/groups", as_=caller)
    committed = storage.stats.requests_committed

    for _ in range(5):
        assert (await api.get("/groups", as_=caller)).status == 200

    assert storage.stats.requests_committed == committed


def _principal_and_token(settings):
    from hub.auth import TokenVerifier

    token = issue_token(settings, user_id=uuid.uuid4(), org_id=uuid.uuid4(), role="owner")
    return TokenVerifier(settings).verify(token), token
