"""The caller's notifications: `GET /me/notifications` (the in-app inbox) and
`POST /me/notifications/read`.

Reading is shared between the caller's devices: every mark (here, or by a read receipt that
covers a notified message, `hub.actors.session`) sends `notifications_read` to all of their
sockets.
Entries are written with the message that causes them (`hub.storage.notifications`); live
sockets also get each as a `notification` frame. A notification of a group the caller's
organization has left is no longer listed: what it says belongs to that group.
"""

from __future__ import annotations

from quart import Blueprint
from quart_schema import validate_querystring, validate_request

from hub import protocol
from hub.errors import FieldInvalid
from hub.frames import event_frame
from hub.http.identity import current_principal, current_router, current_storage
from hub.http.openapi import errors, responds
from hub.http.schemas import InboxOut, InboxQuery, MarkedOut, MarkReadIn, NotificationOut
from hub.notifications.content import preview
from hub.storage.notifications import (
    inbox,
    mark_notifications_read,
    mark_thread_notifications_read,
    unread_notifications,
)
from hub.storage.outbox import message_rows_by_id

blueprint = Blueprint("notifications", __name__)


@blueprint.get("/me/notifications")
@errors(422)
@responds(InboxOut)
@validate_querystring(InboxQuery)
async def notifications(query_args: InboxQuery) -> InboxOut:
    """The caller's notifications, newest first, `limit` a page (`before`: the last id of the
    previous page; `unread=true`: only those not yet read), with the unread count."""
    principal = current_principal()
    storage = current_storage()
    rows = await storage.read(
        inbox(
            principal.user_id,
            principal.org_id,
            before_id=query_args.before,
            unread_only=query_args.unread,
            limit=query_args.limit + 1,
        )
    )
    page = rows[: query_args.limit]
    opened = await storage.sealing.open_rows(
        await storage.read(message_rows_by_id([r["message_id"] for r in page]))
    )
    messages = {m.id: m for m in opened}
    unread = await storage.read(unread_notifications(principal.user_id, principal.org_id))
    out = []
    for row in page:
        message = messages.get(row["message_id"])
        out.append(
            NotificationOut(
                id=row["id"],
                reason=row["reason"],
                urgent=bool(row["urgent"]),
                created_at=row["created_at"],
                group_id=row["group_id"],
                group_name=row["group_name"],
                thread_id=row["thread_id"],
                thread_title=row["thread_title"],
                seq=row["seq"],
                read_at=row["read_at"],
                sender_name=None if message is None else message.sender_name,
                preview=None if message is None else preview(message.body),
            )
        )
    return InboxOut(notifications=out, unread_count=unread, has_more=len(rows) > len(page))


@blueprint.post("/me/notifications/read")
@errors(422)
@responds(MarkedOut)
@validate_request(MarkReadIn)
async def mark_read(data: MarkReadIn) -> MarkedOut:
    """Mark notifications read: `ids`, every one about `thread_id`, or `all: true`."""
    if [bool(data.ids), data.thread_id is not None, data.all].count(True) != 1:
        raise FieldInvalid("ids", "give exactly one of ids, thread_id or all: true")
    principal = current_principal()
    storage = current_storage()
    if data.thread_id is not None:
        tid = data.thread_id
        marked = await storage.write(
            lambda now: mark_thread_notifications_read(principal.user_id, tid, None, now)
        )
    else:
        ids = None if data.all else data.ids
        marked = await storage.write(
            lambda now: mark_notifications_read(principal.user_id, ids, now)
        )
    unread = await storage.read(unread_notifications(principal.user_id, principal.org_id))
    if marked:
        # The caller's other devices (and this one's socket) bring their counts in line.
        frame = protocol.NotificationsRead(
            unread_count=unread, ids=[] if data.all else marked, all=data.all
        )
        current_router().to_user(principal.user_id, event_frame(frame))
    return MarkedOut(marked=len(marked), unread_count=unread)
