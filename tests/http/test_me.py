"""`GET /me` through the real hub: the caller's identity as the hub verified their token."""

from __future__ import annotations

from datetime import UTC, datetime

import jwt

from tests.factories import new_member
from tests.http.blocking import call


async def test_me_answers_with_the_tokens_identity_and_the_organizations_name(hub, settings):
    planner = await new_member(
        hub.storage, settings, role="manager", name="Pat Planner", organization_name="Bloom & Co"
    )
    expires = jwt.decode(planner.token, options={"verify_signature": False})["exp"]

    status, me, _ = await call(hub, "GET", "/me", planner)

    assert status == 200
    assert me == {
        "user_id": str(planner.user_id),
        "organization_id": str(planner.org_id),
        "organization_name": "Bloom & Co",
        "display_name": "Pat Planner",
        "role": "manager",
        "expires_at": me["expires_at"],
    }
    expires_at = datetime.fromisoformat(me["expires_at"])
    assert expires_at.tzinfo is not None
    assert expires_at == datetime.fromtimestamp(expires, UTC)


async def test_an_organization_first_seen_in_a_token_has_the_hubs_default_name(hub, settings):
    vendor = await new_member(hub.storage, settings, role="vendor", name="Victor Vendor")

    _, me, _ = await call(hub, "GET", "/me", vendor)

    assert me["organization_name"] == f"Organization {str(vendor.org_id)[:8]}"


async def test_me_without_a_token_is_401(hub):
    status, body, _ = await call(hub, "GET", "/me")

    assert status == 401
    assert body["error"]["code"] == "unauthorized"
