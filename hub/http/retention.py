"""A group's retention and legal hold: `GET`/`PUT /groups/{id}/retention`, `PUT`/`DELETE
/groups/{id}/legal-hold` (docs/privacy.md, "Retention").

Every member may read when their wedding's data is archived and deleted; the owner
organization's owners and admins change the days and place or lift a legal hold, also once the
group is archived (that is when a hold matters most), until it is purged. Each change is audited
with what changed, never any content.
"""

from __future__ import annotations

from uuid import UUID

from msgspec import UNSET
from quart import Blueprint
from quart_schema import validate_request

from hub.access import authorize_group, may
from hub.errors import FieldInvalid
from hub.http.identity import audit, current_principal, current_storage
from hub.http.openapi import errors, responds
from hub.http.params import path_id
from hub.http.schemas import LegalHoldIn, LegalHoldOut, RetentionIn, RetentionOut
from hub.storage.retention import RetentionState, retention_state, set_legal_hold, set_retention

blueprint = Blueprint("retention", __name__)


def retention_out(state: RetentionState, may_change: bool = True) -> RetentionOut:
    hold = None
    if state.legal_hold_at is not None:
        hold = LegalHoldOut(
            at=state.legal_hold_at, reason=state.legal_hold_reason or "", by=state.legal_hold_by
        )
    return RetentionOut(
        group_id=state.group_id,
        retention_days_after_wedding=state.retention_days_after_wedding,
        archive_days_after_wedding=state.archive_days_after_wedding,
        anchor=state.anchor,
        anchored_at=state.anchored_at,
        archive_due=state.archive_due,
        purge_due=state.purge_due,
        status=state.status,  # type: ignore[arg-type]
        legal_hold=hold,
        archived_at=state.archived_at,
        purged_at=state.purged_at,
        may_change=may_change and state.purged_at is None,
    )


@blueprint.get("/groups/<group_id>/retention")
@errors(404, 422)
@responds(RetentionOut)
async def get_retention(group_id: str) -> RetentionOut:
    """When the group is archived and its messages and files deleted, and any legal hold."""
    gid = path_id("group_id", group_id)
    storage = current_storage()
    principal = current_principal()
    access = await authorize_group(storage, principal, gid, "read")
    state = await storage.read(retention_state(gid))
    return retention_out(state, may(principal, access.group, "manage_retention"))


@blueprint.put("/groups/<group_id>/retention")
@errors(403, 404, 409, 422)
@responds(RetentionOut)
@validate_request(RetentionIn)
async def put_retention(group_id: str, data: RetentionIn) -> RetentionOut:
    """Change the days (the owner organization's owners and admins). Fields left out stay as
    they are; archiving must come before deleting (`archive_days_after_wedding` below
    `retention_days_after_wedding`). A group already due is archived or purged at the
    retention actor's next pass."""
    gid = path_id("group_id", group_id)
    storage = current_storage()
    await authorize_group(storage, current_principal(), gid, "manage_retention")
    current = await storage.read(retention_state(gid))
    retention = (
        current.retention_days_after_wedding
        if data.retention_days_after_wedding is UNSET
        else data.retention_days_after_wedding
    )
    archive = (
        current.archive_days_after_wedding
        if data.archive_days_after_wedding is UNSET
        else data.archive_days_after_wedding
    )
    if archive >= retention:
        named = (
            "archive_days_after_wedding"
            if data.archive_days_after_wedding is not UNSET
            else "retention_days_after_wedding"
        )
        raise FieldInvalid(
            named,
            f"the group must be archived (after {archive} days) before its data is deleted "
            f"(after {retention} days): archive_days_after_wedding must be below "
            "retention_days_after_wedding",
        )
    changes = {
        name: {"from": before, "to": after}
        for name, before, after in (
            ("retention_days_after_wedding", current.retention_days_after_wedding, retention),
            ("archive_days_after_wedding", current.archive_days_after_wedding, archive),
        )
        if before != after
    }
    if not changes:
        return retention_out(current)
    entry = audit("group.retention", "group", gid, group_id=gid, details={"changes": changes})
    state = await storage.write(
        lambda now: set_retention(gid, retention_days=retention, archive_days=archive, now=now),
        audit=[entry],
    )
    return retention_out(state)


@blueprint.put("/groups/<group_id>/legal-hold")
@errors(403, 404, 409, 422)
@responds(RetentionOut)
@validate_request(LegalHoldIn)
async def put_legal_hold(group_id: str, data: LegalHoldIn) -> RetentionOut:
    """Place a legal hold, or change its reason (the owner organization's owners and admins):
    while it holds, the group is neither archived nor purged, whatever its dates say."""
    gid = path_id("group_id", group_id)
    principal = current_principal()
    return await _hold(gid, principal.user_id, data.reason)


@blueprint.delete("/groups/<group_id>/legal-hold")
@errors(403, 404, 409, 422)
@responds(RetentionOut)
async def delete_legal_hold(group_id: str) -> RetentionOut:
    """Lift the legal hold: a group past its dates is archived or purged at the retention
    actor's next pass. Lifting a hold that is not there changes nothing."""
    return await _hold(path_id("group_id", group_id), None, None)


async def _hold(gid: UUID, by: UUID | None, reason: str | None) -> RetentionOut:
    storage = current_storage()
    await authorize_group(storage, current_principal(), gid, "manage_retention")
    current = await storage.read(retention_state(gid))
    if reason is None and current.legal_hold_at is None:
        return retention_out(current)
    if reason is None:
        entry = audit("group.legal_hold_clear", "group", gid, group_id=gid)
    else:
        entry = audit(
            "group.legal_hold_set",
            "group",
            gid,
            group_id=gid,
            details={"reason": reason, "replaced": current.legal_hold_at is not None},
        )
    _, after = await storage.write(
        lambda now: set_legal_hold(gid, by=by, reason=reason, now=now), audit=[entry]
    )
    return retention_out(after)
