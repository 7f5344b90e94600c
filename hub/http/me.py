"""The caller: `GET /me`, who the hub takes the bearer of this token to be.

A client has the token but should not have to decode it (nor trust its own reading of it): this
answers with the identity the hub verified, as every other route sees it, and the name the hub
knows the caller's organization by. `GET /me/organization/users` lists the people of the
caller's organization to its owners and admins (`hub.access.may_list_users`), who may erase
them (`hub.http.erasure`).
"""

from __future__ import annotations

from quart import Blueprint

from hub.access import may_erase_other, may_list_users
from hub.http.identity import current_principal, current_storage
from hub.http.openapi import errors, responds
from hub.http.schemas import MeOut, OrganizationUserList, OrganizationUserOut
from hub.storage.identities import get_organization, organization_users

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


@blueprint.get("/me/organization/users")
@errors(403)
@responds(OrganizationUserList)
async def list_organization_users() -> OrganizationUserList:
    """The users of the caller's organization the hub has met, for its owners and admins
    (others get 403): id, display name, role, when last seen, whether erased, and whether the
    caller may erase them (`POST /users/{id}/erase`).

    By name, the erased last (their name is "Erased user" and they are seen no more); at most
    1000. Other organizations' users are never listed.
    """
    principal = current_principal()
    may_list_users(principal)
    users = await current_storage().read(organization_users(principal.org_id))
    return OrganizationUserList(
        items=[
            OrganizationUserOut(
                id=u.id,
                display_name=u.display_name,
                role=u.role,
                last_seen_at=u.last_seen_at,
                erased=u.erased_at is not None,
                erasable=may_erase_other(principal, u),
            )
            for u in users
        ]
    )
