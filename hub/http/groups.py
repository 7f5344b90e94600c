"""Groups: list, create, read, update (one or many), archive.

A group exists for a caller only while their organization's connection to it is active; that and
every role decision is `hub.access`'s. Each mutation is audited in the same transaction as the
change, with the fields it changed (old and new values).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import msgspec
from msgspec import UNSET
from quart import Blueprint, current_app
from quart_schema import validate_querystring, validate_request

from hub.access import Action, authorize_group, may_create_group, readable_group_ids
from hub.errors import HubError, NotFound
from hub.http.errors import STATUS_BY_CODE
from hub.http.identity import audit, current_principal, current_storage
from hub.http.openapi import errors, responds
from hub.http.params import decode_cursor, encode_cursor, path_id
from hub.http.schemas import (
    ClientOut,
    ErrorInfo,
    GroupActivity,
    GroupBulkResults,
    GroupBulkUpdate,
    GroupCreate,
    GroupDetail,
    GroupOut,
    GroupPage,
    GroupQuery,
    GroupResult,
    GroupStats,
    GroupUpdate,
    MemberOut,
)
from hub.storage import groups as group_store
from hub.storage.records import AuditEntry, Group, GroupListing, Membership
from hub.validation import check_json_object

blueprint = Blueprint("groups", __name__)


def group_out(listing: GroupListing) -> GroupOut:
    """A listed group with its stats as the API shows it. Last activity is the latest of the
    group's own change and any of its threads' (a message bumps its thread)."""
    group = listing.group
    last_activity = max(filter(None, (group.updated_at, listing.last_thread_activity_at)))
    stats = GroupStats(
        member_count=listing.member_count,
        thread_count=listing.thread_count,
        message_count=listing.message_count,
        unread_count=listing.unread_count,
        last_activity_at=last_activity,
    )
    fields = {name: getattr(group, name) for name in Group.__struct_fields__}
    return GroupOut(**fields, stats=stats)


async def load_group_out(group_id: UUID) -> GroupOut:
    rows = await current_storage().read(
        group_store.group_rows(
            user_id=current_principal().user_id, group_ids=[group_id], status=None
        )
    )
    if not rows:
        raise NotFound(f"group {group_id} not found")
    return group_out(rows[0])


def changes_of(before: msgspec.Struct, after: msgspec.Struct, fields: tuple[str, ...]) -> dict:
    """{field: {"from": old, "to": new}} for the fields that really changed, JSON-ready."""
    changed = {}
    for name in fields:
        old, new = getattr(before, name), getattr(after, name)
        if old != new:
            changed[name] = {"from": msgspec.to_builtins(old), "to": msgspec.to_builtins(new)}
    return changed


def update_fields(data: msgspec.Struct, allowed: tuple[str, ...]) -> dict[str, Any]:
    return {
        name: getattr(data, name)
        for name in allowed
        if hasattr(data, name) and getattr(data, name) is not msgspec.UNSET
    }


@blueprint.get("/groups")
@errors(422)
@responds(GroupPage)
@validate_querystring(GroupQuery)
async def list_groups(query_args: GroupQuery) -> GroupPage:
    """List the caller's groups, newest first, with stats.

    Filter by `status` (active by default; archived groups stay listable with
    `status=archived`) and a `wedding_from`/`wedding_to` date range. Each group carries
    member_count, thread_count, message_count, the caller's unread_count and last_activity_at.
    """
    principal = current_principal()
    after = None
    if query_args.cursor:
        after = decode_cursor("groups", query_args.cursor, (datetime, UUID))
    group_ids = await readable_group_ids(current_storage(), principal)
    rows = await current_storage().read(
        group_store.group_rows(
            user_id=principal.user_id,
            group_ids=group_ids,
            status=query_args.status,
            wedding_from=query_args.wedding_from,
            wedding_to=query_args.wedding_to,
            after=after,  # type: ignore[arg-type]
            limit=query_args.limit + 1,
        )
    )
    items = [group_out(row) for row in rows[: query_args.limit]]
    next_cursor = None
    if len(rows) > query_args.limit:
        last = items[-1]
        next_cursor = encode_cursor("groups", [last.created_at.isoformat(), str(last.id)])
    return GroupPage(items=items, next_cursor=next_cursor)


@blueprint.post("/groups")
@errors(400, 403, 422)
@responds(GroupOut, 201)
@validate_request(GroupCreate)
async def create_group(data: GroupCreate) -> tuple[GroupOut, int, dict[str, str]]:
    """Create a group; the caller's organization becomes its owner member.

    Owners, admins and managers may create groups. An optional `client` (the couple) is
    created with it, owned by the caller's organization. Answers 201 with `Location`.
    """
    principal = current_principal()
    may_create_group(principal)
    check_json_object(data.settings, "settings")
    group_id = uuid.uuid4()

    def create(now: datetime):  # type: ignore[no-untyped-def]
        client_id = None
        if data.client is not None:
            client = yield from group_store.create_client(
                client_id=uuid.uuid4(),
                organization_id=principal.org_id,
                now=now,
                wedding_date=data.wedding_date,
                **msgspec.structs.asdict(data.client),
            )
            client_id = client.id
        group = yield from group_store.create_group(
            group_id=group_id,
            owner_organization_id=principal.org_id,
            created_by=principal.user_id,
            name=data.name,
            description=data.description,
            wedding_date=data.wedding_date,
            client_id=client_id,
            settings=data.settings,
            now=now,
        )
        return group

    fields = {
        "name": data.name,
        "description": data.description,
        "wedding_date": msgspec.to_builtins(data.wedding_date),
        "with_client": data.client is not None,
    }
    entry = audit("group.create", "group", group_id, group_id=group_id, details={"fields": fields})
    await current_storage().write(create, audit=[entry])
    location = f"{current_app.extensions['hub']['base_path']}/groups/{group_id}"
    return await load_group_out(group_id), 201, {"Location": location}


@blueprint.put("/groups")
@errors(422)
@responds(GroupBulkResults)
@validate_request(GroupBulkUpdate)
async def bulk_update_groups(data: GroupBulkUpdate) -> GroupBulkResults:
    """Update several groups in one request, each on its own.

    Always 200 when the request itself is valid: `results` says per item whether it was
    updated (`ok`, with the group) or why not (`status` and `error`, as the single-item
    endpoint would have answered). Nothing fails silently and one failure never undoes another.
    """
    results = []
    for item in data.items:
        try:
            group = await _update_group(item.id, item)
        except HubError as error:
            results.append(failed_result(GroupResult, item.id, error))
        else:
            results.append(GroupResult(id=item.id, ok=True, status=200, group=group))
    succeeded = sum(r.ok for r in results)
    return GroupBulkResults(succeeded=succeeded, failed=len(results) - succeeded, results=results)


def failed_result(kind: type, item_id: UUID, error: HubError) -> Any:
    status = getattr(error, "status", None) or STATUS_BY_CODE.get(error.code, 500)
    message = error.message if status != 500 else "internal error"
    return kind(
        id=item_id,
        ok=False,
        status=status,
        error=ErrorInfo(code=error.code, message=message, details=error.details),
    )


@blueprint.get("/groups/<group_id>")
@errors(404, 422)
@responds(GroupDetail)
async def get_group(group_id: str) -> GroupDetail:
    """A group with its members (vendor types, roles, statuses), client and activity.

    Activity: messages in the last 24 hours and 7 days, open and urgent threads, and the
    five members who sent most messages in the last 7 days.
    """
    gid = path_id("group_id", group_id)
    access = await authorize_group(current_storage(), current_principal(), gid, "read")
    group = await load_group_out(gid)
    members = await current_storage().read(group_store.member_rows(gid))
    activity = await current_storage().read(group_store.group_activity(gid, now=datetime.now(UTC)))
    client = None
    if access.group.client_id is not None:
        record = await current_storage().read(group_store.get_client(access.group.client_id))
        if record is not None:
            client = msgspec.convert(record, ClientOut, from_attributes=True)
    return GroupDetail(
        group=group,
        members=[member_out(row) for row in members],
        activity=msgspec.convert(activity, GroupActivity),
        client=client,
    )


def member_out(member: Membership) -> MemberOut:
    connection = member.connection
    return MemberOut(
        organization_id=connection.organization_id,
        organization_name=member.organization_name,
        vendor_type=connection.vendor_type,
        role=connection.role,
        status=connection.status,
        invited_at=connection.invited_at,
        invited_by=connection.invited_by,
        joined_at=connection.joined_at,
    )


@blueprint.put("/groups/<group_id>")
@errors(403, 404, 409, 422)
@responds(GroupOut)
@validate_request(GroupUpdate)
async def update_group(group_id: str, data: GroupUpdate) -> GroupOut:
    """Partial update of name, description, wedding_date and settings (owner/admin).

    Fields left out are kept; `null` clears description or wedding_date. Archived groups are
    read-only (409).
    """
    return await _update_group(path_id("group_id", group_id), data)


async def _update_group(group_id: UUID, data: GroupUpdate) -> GroupOut:
    if data.settings is not UNSET:
        check_json_object(data.settings, "settings")
    await _authorize(group_id, "update_group")
    changes = update_fields(data, group_store.GROUP_UPDATABLE)

    entry = audit("group.update", "group", group_id, group_id=group_id)

    def audited(outcome: tuple[Group, Group]) -> list[AuditEntry]:
        # Runs in the storage actor, outside the request: only the prepared entry is used.
        changed = changes_of(*outcome, fields=group_store.GROUP_UPDATABLE)
        return [msgspec.structs.replace(entry, details={"changes": changed})] if changed else []

    await current_storage().write(
        lambda now: group_store.update_group(group_id, changes, now), audit=audited
    )
    return await load_group_out(group_id)


@blueprint.delete("/groups/<group_id>")
@errors(403, 404, 409, 422)
@responds(GroupOut)
async def archive_group(group_id: str) -> GroupOut:
    """Archive a group (owner/admin): a soft delete. It becomes read-only and stays listable
    with `status=archived`; archiving twice is a 409."""
    gid = path_id("group_id", group_id)
    await _authorize(gid, "archive_group")
    entry = audit(
        "group.archive",
        "group",
        gid,
        group_id=gid,
        details={"changes": {"status": {"from": "active", "to": "archived"}}},
    )
    await current_storage().write(lambda now: group_store.archive_group(gid, now), audit=[entry])
    return await load_group_out(gid)


async def _authorize(group_id: UUID, action: Action) -> None:
    await authorize_group(current_storage(), current_principal(), group_id, action)
