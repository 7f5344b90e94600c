"""The audit trail over REST: `GET /audit`, for owners and admins of the owning organization.

Rows are shown only for groups the caller's organization owns; filters narrow that, never widen
it. Oldest first, paged by an opaque cursor over the row id.
"""

from __future__ import annotations

import msgspec
from quart import Blueprint
from quart_schema import validate_querystring

from hub.access import auditable_group_ids, authorize_group
from hub.http.identity import current_principal, current_storage
from hub.http.openapi import errors, responds
from hub.http.params import decode_cursor, encode_cursor
from hub.http.schemas import AuditOut, AuditPage, AuditQuery
from hub.storage.audit import audit_rows

blueprint = Blueprint("audit", __name__)


@blueprint.get("/audit")
@errors(403, 404, 422)
@responds(AuditPage)
@validate_querystring(AuditQuery)
async def list_audit(query_args: AuditQuery) -> AuditPage:
    """Audit rows of the caller's groups (owner/admin of the owning organization).

    Filter by `group_id`, `actor` (user id), `action` (e.g. `group.update`) and a time range
    `since` (inclusive) to `until` (exclusive). Each row says who did it, from which IP and
    user agent, to what, in which group, and which fields changed.
    """
    storage = current_storage()
    principal = current_principal()
    if query_args.group_id is not None:
        await authorize_group(storage, principal, query_args.group_id, "view_audit")
        group_ids = [query_args.group_id]
    else:
        group_ids = await auditable_group_ids(storage, principal)
    after_id = 0
    if query_args.cursor:
        (after_id,) = decode_cursor("audit", query_args.cursor, (int,))
    rows = await storage.read(
        audit_rows(
            group_ids=group_ids,
            actor_user_id=query_args.actor,
            action=query_args.action,
            since=query_args.since,
            until=query_args.until,
            after_id=after_id,
            limit=query_args.limit + 1,
        )
    )
    items = [msgspec.convert(row, AuditOut, from_attributes=True) for row in rows]
    next_cursor = None
    if len(items) > query_args.limit:
        items = items[: query_args.limit]
        next_cursor = encode_cursor("audit", [items[-1].id])
    return AuditPage(items=items, next_cursor=next_cursor)
