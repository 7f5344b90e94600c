"""The caller: `GET /me`, who the hub takes the bearer of this token to be.

A client has the token but should not have to decode it (nor trust its own reading of it): this
answers with the identity the hub verified, as every other route sees it, and the name the hub
knows the caller's organization by.
"""

from __future__ import annotations

from quart import Blueprint

from hub.http.identity import current_principal, current_storage
from hub.http.openapi import errors, responds
from hub.http.schemas import MeOut
from hub.storage.identities import get_organization

blueprint = Blueprint("me", __name__)


@blueprint.get("/me")
@errors()
@responds(MeOut)
async def me() -> MeOut:
    """Who the caller is, as the hub sees their token: user, organization, display name, role
    and when the token expires.

    `organization_name` is the name the hub keeps for the organization: unless it was given
    one, the default the hub gave it when a token or an invitation first named it
    ("Organization 1a2b3c4d").
    """
    principal = current_principal()
    organization = await current_storage().read(get_organization(principal.org_id))
    return MeOut(
        user_id=principal.user_id,
        organization_id=principal.org_id,
        organization_name=organization.name,
        display_name=principal.name,
        role=principal.role,  # type: ignore[arg-type]  # one of ROLES: hub.auth checked it
        expires_at=principal.expires,
    )
