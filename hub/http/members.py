"""Memberships: inviting an organization, listing and answering invitations, removing a member.

The owner or admin of the owning organization invites and removes; the invited organization's
owner or admin lists its pending invitations, and accepts or declines them. Until it accepts,
the group stays invisible to it except through these endpoints.
"""

from __future__ import annotations

from uuid import UUID

from quart import Blueprint
from quart_schema import validate_request

from hub.access import authorize_group, authorize_invitation, invitations_to_answer
from hub.errors import NotFound
from hub.http.groups import member_out
from hub.http.identity import audit, current_principal, current_router, current_storage
from hub.http.openapi import errors, responds
from hub.http.params import path_id
from hub.http.schemas import InvitationList, InvitationOut, Invite, MemberOut
from hub.messaging import MessageRouter
from hub.storage import groups as group_store

blueprint = Blueprint("members", __name__)


async def _member(group_id: UUID, organization_id: UUID) -> MemberOut:
    row = await current_storage().read(group_store.member_row(group_id, organization_id))
    if row is None:
        raise NotFound(f"organization {organization_id} is not a member of group {group_id}")
    return member_out(row)


@blueprint.post("/groups/<group_id>")
@errors(403, 404, 409, 422)
@responds(MemberOut, 201)
@validate_request(Invite)
async def invite(group_id: str, data: Invite) -> tuple[MemberOut, int]:
    """Invite a vendor organization into the group (owner/admin of the owning organization).

    Re-inviting an organization that declined or was removed invites it again; one that is
    already invited or active is a 409.
    """
    gid = path_id("group_id", group_id)
    principal = current_principal()
    await authorize_group(current_storage(), principal, gid, "invite")
    entry = audit(
        "member.invite",
        "organization",
        data.organization_id,
        group_id=gid,
        details={"fields": {"vendor_type": data.vendor_type, "role": data.role}},
    )
    await current_storage().write(
        lambda now: group_store.invite_organization(
            group_id=gid,
            organization_id=data.organization_id,
            vendor_type=data.vendor_type,
            role=data.role,
            invited_by=principal.user_id,
            now=now,
        ),
        audit=[entry],
    )
    return await _member(gid, data.organization_id), 201


@blueprint.get("/invitations")
@errors(403)
@responds(InvitationList)
async def list_invitations() -> InvitationList:
    """The caller's organization's pending invitations, newest first (owner/admin: the roles
    that may answer them; others get 403).

    At most 200; groups archived since the invitation was sent are left out. Each names the
    group (with its wedding date), the organization that owns it, who sent the invitation, and
    the vendor type and role it offers. Answer with `POST /groups/{group_id}/accept` or
    `/decline`; an answered invitation is no longer listed.
    """
    invitations = await invitations_to_answer(current_storage(), current_principal())
    return InvitationList(
        items=[
            InvitationOut(
                group_id=i.group_id,
                group_name=i.group_name,
                wedding_date=i.wedding_date,
                owner_organization_id=i.owner_organization_id,
                owner_organization_name=i.owner_organization_name,
                vendor_type=i.vendor_type,
                role=i.role,
                invited_at=i.invited_at,
                invited_by_name=i.invited_by_name,
            )
            for i in invitations
        ]
    )


@blueprint.post("/groups/<group_id>/accept")
@errors(403, 404, 422)
@responds(MemberOut)
async def accept(group_id: str) -> MemberOut:
    """Accept the caller's organization's pending invitation (its owner or admin)."""
    return await _answer(path_id("group_id", group_id), accept=True)


@blueprint.post("/groups/<group_id>/decline")
@errors(403, 404, 422)
@responds(MemberOut)
async def decline(group_id: str) -> MemberOut:
    """Decline the caller's organization's pending invitation (its owner or admin)."""
    return await _answer(path_id("group_id", group_id), accept=False)


async def _answer(group_id: UUID, *, accept: bool) -> MemberOut:
    principal = current_principal()
    await authorize_invitation(current_storage(), principal, group_id)
    status = "active" if accept else "declined"
    entry = audit(
        "invitation.accept" if accept else "invitation.decline",
        "organization",
        principal.org_id,
        group_id=group_id,
        details={"changes": {"status": {"from": "invited", "to": status}}},
    )
    await current_storage().write(
        lambda now: group_store.respond_to_invitation(
            group_id=group_id, organization_id=principal.org_id, accept=accept, now=now
        ),
        audit=[entry],
    )
    return await _member(group_id, principal.org_id)


@blueprint.delete("/groups/<group_id>/members/<org_id>")
@errors(403, 404, 409, 422)
@responds(MemberOut)
async def remove(group_id: str, org_id: str) -> MemberOut:
    """Remove an invited or active organization (owner/admin of the owning organization).

    Its users lose access at once. The owning organization cannot be removed (409).
    """
    gid, oid = path_id("group_id", group_id), path_id("org_id", org_id)
    await authorize_group(current_storage(), current_principal(), gid, "remove_member")
    entry = audit(
        "member.remove",
        "organization",
        oid,
        group_id=gid,
        details={"changes": {"status": {"to": "removed"}}},
    )
    await current_storage().write(
        lambda now: group_store.remove_member(group_id=gid, organization_id=oid, now=now),
        audit=[entry],
    )
    # Its sockets lose the group's threads now, not at their next join.
    router: MessageRouter = current_router()
    await router.membership_revoked(gid, oid)
    return await _member(gid, oid)
