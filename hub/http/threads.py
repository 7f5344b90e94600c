"""Threads: list (filters, urgent-first sort), create, read with history, update, archive.

Any active member may create threads and read them; managers, admins and owners update and
archive them (`hub.access` decides). A thread's first message, when given on creation, is posted
through the message router like any other, so live subscribers see it.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec
from quart import Blueprint, current_app
from quart_schema import validate_querystring, validate_request

from hub.access import (
    authorize_group,
    authorize_thread,
    may_delete_any,
    read_thread,
    readable_group_ids,
)
from hub.errors import HubError
from hub.http.groups import changes_of, failed_result, update_fields
from hub.http.identity import audit, current_principal, current_storage
from hub.http.messages import post_message
from hub.http.openapi import errors, responds
from hub.http.params import decode_cursor, encode_cursor, path_id
from hub.http.schemas import (
    HistoryQuery,
    MessageOut,
    PresenceOut,
    ReceiptOut,
    ThreadBulkResults,
    ThreadBulkUpdate,
    ThreadCreate,
    ThreadDetail,
    ThreadOut,
    ThreadPage,
    ThreadQuery,
    ThreadResult,
    ThreadUpdate,
)
from hub.storage import threads as thread_store
from hub.storage.records import AuditEntry, Message, MessageDraft, Thread, ThreadListing

blueprint = Blueprint("threads", __name__)


def thread_out(thread: Thread, *, unread_count: int, last_read_seq: int) -> ThreadOut:
    """Message count is the thread's last seq: seqs are gap-free and messages are never
    hard-deleted, so it needs no count over the messages table."""
    return ThreadOut(
        id=thread.id,
        group_id=thread.group_id,
        title=thread.title,
        thread_type=thread.thread_type,
        priority=thread.priority,
        status=thread.status,
        created_by=thread.created_by,
        created_at=thread.created_at,
        updated_at=thread.updated_at,
        message_count=thread.last_seq,
        unread_count=unread_count,
        last_read_seq=last_read_seq,
        last_message_at=thread.last_message_at,
        archived_at=thread.archived_at,
        last_change=thread.last_change,
    )


def _listing_out(listing: ThreadListing) -> ThreadOut:
    return thread_out(
        listing.thread,
        unread_count=listing.reader.unread_count,
        last_read_seq=listing.reader.last_read_seq,
    )


async def load_thread_out(thread: Thread) -> ThreadOut:
    reader = await current_storage().read(
        thread_store.thread_reader_state(thread.id, current_principal().user_id)
    )
    return thread_out(thread, unread_count=reader.unread_count, last_read_seq=reader.last_read_seq)


@blueprint.get("/threads")
@errors(404, 422)
@responds(ThreadPage)
@validate_querystring(ThreadQuery)
async def list_threads(query_args: ThreadQuery) -> ThreadPage:
    """List threads of the caller's groups, most recently active first.

    Filter by `group_id`, `status` (archived threads only when asked for), `priority`,
    `thread_type`, title text `q` (case-insensitive) and `updated_since`. `sort=priority` puts
    urgent first, then high, normal, low, each most recently active first. Each thread carries
    message_count, last_message_at and the caller's unread_count.
    """
    principal = current_principal()
    by_priority = query_args.sort == "priority"
    listing = f"threads:{query_args.sort}"
    after = None
    if query_args.cursor:
        types = (int, datetime, UUID) if by_priority else (datetime, UUID)
        after = decode_cursor(listing, query_args.cursor, types)
    if query_args.group_id is not None:
        await authorize_group(current_storage(), principal, query_args.group_id, "read")
        group_ids = [query_args.group_id]
    else:
        group_ids = await readable_group_ids(current_storage(), principal)
    rows = await current_storage().read(
        thread_store.thread_rows(
            user_id=principal.user_id,
            group_ids=group_ids,
            status=query_args.status,
            priority=query_args.priority,
            thread_type=query_args.thread_type,
            title_contains=query_args.q,
            updated_since=query_args.updated_since,
            by_priority=by_priority,
            after=after,
            limit=query_args.limit + 1,
        )
    )
    items = [_listing_out(entry) for entry in rows[: query_args.limit]]
    next_cursor = None
    if len(rows) > query_args.limit:
        last_row, last = rows[query_args.limit - 1], items[-1]
        key: list[Any] = [last.updated_at.isoformat(), str(last.id)]
        if by_priority:
            key.insert(0, last_row.priority_rank)
        next_cursor = encode_cursor(listing, key)
    return ThreadPage(items=items, next_cursor=next_cursor)


@blueprint.post("/threads")
@errors(403, 404, 409, 422)
@responds(ThreadOut, 201)
@validate_request(ThreadCreate)
async def create_thread(data: ThreadCreate) -> tuple[ThreadOut, int, dict[str, str]]:
    """Create a thread in a group (any active member), optionally with its first message.

    Answers 201 with `Location`. The first message is posted after the thread is committed,
    exactly as `POST /threads/{thread_id}` would post it.
    """
    principal = current_principal()
    await authorize_group(current_storage(), principal, data.group_id, "create_thread")
    thread_id = uuid.uuid4()
    fields = {"title": data.title, "thread_type": data.thread_type, "priority": data.priority}
    entry = audit(
        "thread.create", "thread", thread_id, group_id=data.group_id, details={"fields": fields}
    )
    thread = await current_storage().write(
        lambda now: thread_store.create_thread(
            thread_id=thread_id,
            group_id=data.group_id,
            title=data.title,
            thread_type=data.thread_type,
            priority=data.priority,
            created_by=principal.user_id,
            now=now,
        ),
        audit=[entry],
    )
    if data.first_message is not None:
        first = data.first_message
        await post_message(
            MessageDraft(
                thread_id=thread_id,
                sender_user_id=principal.user_id,
                sender_org_id=principal.org_id,
                client_msg_id=first.client_msg_id or uuid.uuid4().hex,
                body=first.body,
            ),
            group_id=data.group_id,
        )
        thread = await current_storage().read(thread_store.get_thread(thread_id))
    location = f"{current_app.extensions['hub']['base_path']}/threads/{thread_id}"
    return await load_thread_out(thread), 201, {"Location": location}


@blueprint.put("/threads")
@errors(422)
@responds(ThreadBulkResults)
@validate_request(ThreadBulkUpdate)
async def bulk_update_threads(data: ThreadBulkUpdate) -> ThreadBulkResults:
    """Update status and/or priority of several threads, each on its own.

    Always 200 when the request itself is valid: `results` says per item whether it was
    updated (`ok`, with the thread) or why not (`status` and `error`, as the single-item
    endpoint would have answered).
    """
    results = []
    for item in data.items:
        try:
            thread = await _update_thread(item.id, item)
        except HubError as error:
            results.append(failed_result(ThreadResult, item.id, error))
        else:
            results.append(ThreadResult(id=item.id, ok=True, status=200, thread=thread))
    succeeded = sum(r.ok for r in results)
    return ThreadBulkResults(succeeded=succeeded, failed=len(results) - succeeded, results=results)


@blueprint.get("/threads/<thread_id>")
@errors(404, 422)
@responds(ThreadDetail)
@validate_querystring(HistoryQuery)
async def get_thread(thread_id: str, query_args: HistoryQuery) -> ThreadDetail:
    """A thread, its current presence, everyone's read receipts, and a page of its history
    (decrypted, oldest first, each message with its sender's display name).

    By default the latest `limit` messages; `before_seq` pages back, `after_seq` pages
    forward. `has_more` says whether messages exist beyond the page in that direction.
    `read_receipts` are every user's in the thread, furthest read first, at most 200.
    """
    principal = current_principal()
    snapshot, access = await read_thread(
        current_storage(),
        principal,
        path_id("thread_id", thread_id),
        after_seq=query_args.after_seq,
        before_seq=query_args.before_seq,
        limit=query_args.limit,
    )
    reader = snapshot.reader
    return ThreadDetail(
        thread=thread_out(
            snapshot.thread, unread_count=reader.unread_count, last_read_seq=reader.last_read_seq
        ),
        presence=[
            PresenceOut(user_id=p.user_id, status=p.status, last_seen_at=p.last_seen_at)
            for p in snapshot.presence
        ],
        read_receipts=[
            ReceiptOut(
                user_id=r.user_id,
                display_name=r.display_name,
                organization_id=r.organization_id,
                last_read_seq=r.last_read_seq,
                read_at=r.read_at,
            )
            for r in snapshot.receipts
        ],
        messages=[_message_out(m) for m in snapshot.messages],
        has_more=snapshot.has_more,
        may_delete_any=may_delete_any(principal, access),
    )


def _message_out(m: Message) -> MessageOut:
    # Built field by field: several times cheaper per page than msgspec.convert(
    # from_attributes=True) (docs/performance/history/rounds-1-9.md has the figures).
    return MessageOut(
        id=m.id,
        seq=m.seq,
        sender_user_id=m.sender_user_id,
        sender_org_id=m.sender_org_id,
        sender_name=m.sender_name,
        kind=m.kind,
        body=m.body,
        client_msg_id=m.client_msg_id,
        metadata=m.metadata,
        created_at=m.created_at,
        reply_to=m.reply_to,
        edited_at=m.edited_at,
        requires_ack=m.requires_ack,
        deleted_at=m.deleted_at,
        change_no=m.change_no,
        erased=m.erased,
    )


@blueprint.put("/threads/<thread_id>")
@errors(403, 404, 409, 422)
@responds(ThreadOut)
@validate_request(ThreadUpdate)
async def update_thread(thread_id: str, data: ThreadUpdate) -> ThreadOut:
    """Update title, priority and status (open/resolved); managers, admins and owners.

    Archived threads are read-only (409); archive with DELETE.
    """
    return await _update_thread(path_id("thread_id", thread_id), data)


async def _update_thread(thread_id: UUID, data: msgspec.Struct) -> ThreadOut:
    access = await authorize_thread(
        current_storage(), current_principal(), thread_id, "update_thread"
    )
    changes = update_fields(data, thread_store.THREAD_UPDATABLE)
    entry = audit("thread.update", "thread", thread_id, group_id=access.group_id)

    def audited(outcome: tuple[Thread, Thread]) -> list[AuditEntry]:
        # Runs in the storage actor, outside the request: only the prepared entry is used.
        changed = changes_of(*outcome, fields=thread_store.THREAD_UPDATABLE)
        return [msgspec.structs.replace(entry, details={"changes": changed})] if changed else []

    _, after = await current_storage().write(
        lambda now: thread_store.update_thread(thread_id, changes, now), audit=audited
    )
    return await load_thread_out(after)


@blueprint.delete("/threads/<thread_id>")
@errors(403, 404, 409, 422)
@responds(ThreadOut)
async def archive_thread(thread_id: str) -> ThreadOut:
    """Archive a thread (managers, admins, owners): it becomes read-only and is left out of
    listings unless `status=archived` is asked for. Archiving twice is a 409."""
    tid = path_id("thread_id", thread_id)
    access = await authorize_thread(current_storage(), current_principal(), tid, "update_thread")
    entry = audit(
        "thread.archive",
        "thread",
        tid,
        group_id=access.group_id,
        details={"changes": {"status": {"from": access.thread.status, "to": "archived"}}},
    )
    thread = await current_storage().write(
        lambda now: thread_store.archive_thread(tid, now), audit=[entry]
    )
    return await load_thread_out(thread)
