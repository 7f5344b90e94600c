"""A message's edit and deletion over REST: `PUT` and `DELETE /threads/{id}/messages/{seq}`.

Both go through `hub.messaging` as the WebSocket's `edit_message` and `delete_message` do, so
the decision (`hub.access`), the audit row (never the text) and the `message_edited` /
`message_deleted` events are the same whichever door was used.
"""

from __future__ import annotations

from quart import Blueprint, current_app
from quart_schema import validate_request

from hub.http.identity import audit, current_principal, current_router, current_storage
from hub.http.openapi import errors, responds
from hub.http.params import path_id, path_seq
from hub.http.schemas import MessageChangeOut, MessageEditIn
from hub.messaging import delete_message, edit_message

blueprint = Blueprint("edits", __name__)


@blueprint.put("/threads/<thread_id>/messages/<seq>")
@errors(400, 403, 404, 409, 422)
@responds(MessageChangeOut)
@validate_request(MessageEditIn)
async def edit(thread_id: str, seq: str, data: MessageEditIn) -> MessageChangeOut:
    """Replace the text of the caller's own message (any kind with text of its own: text, a
    change of plan, an attachment's caption). 403 for someone else's message, 409 when it was
    deleted or changed meanwhile, or the thread is archived. Mentions are resolved again;
    nobody is notified anew."""
    tid, number = path_id("thread_id", thread_id), path_seq("seq", seq)
    entry = audit("message.edit", "message", number, group_id=None)
    change, frame = await edit_message(
        current_storage(), current_router(), current_principal(), tid, number, data.body, entry
    )
    return MessageChangeOut(
        thread_id=tid,
        seq=number,
        id=change.message_id,
        change_no=change.change_no,
        at=change.at,
        by=change.by,
        deleted=False,
        body=frame.body,
        metadata=frame.metadata,
    )


@blueprint.delete("/threads/<thread_id>/messages/<seq>")
@errors(403, 404, 409, 422)
@responds(MessageChangeOut)
async def delete(thread_id: str, seq: str) -> MessageChangeOut:
    """Delete a message: the caller's own, or any in a group their organization owns, as its
    owner or admin. The message becomes a tombstone (its seq stays; body, metadata and
    attachments are gone, the ciphertext overwritten). Deleting it again answers with the
    first deletion (`duplicate`)."""
    tid, number = path_id("thread_id", thread_id), path_seq("seq", seq)
    entry = audit("message.delete", "message", number, group_id=None)
    attachments = current_app.extensions["hub"]["attachments"]
    change = await delete_message(
        current_storage(),
        current_router(),
        current_principal(),
        tid,
        number,
        entry,
        attachments.remove_blobs,
    )
    return MessageChangeOut(
        thread_id=tid,
        seq=number,
        id=change.message_id,
        change_no=change.change_no,
        at=change.at,
        by=change.by,
        deleted=True,
        duplicate=not change.new,
    )
