"""Sending a message over REST: `POST /threads/{thread_id}`.

Every message goes through the message router in `app.extensions["hub"]["router"]`, never
straight to storage: with the realtime layer running, the router is its supervisor, so a message
posted here reaches the thread's live WebSocket subscribers exactly like one sent over a socket.

Idempotency: a repeated `client_msg_id` from the same sender in the same thread returns the
original message with 200 (the first store answers 201), so a client retrying after a timeout
never makes a duplicate.
"""

from __future__ import annotations

import uuid
from uuid import UUID

from quart import Blueprint
from quart_schema import validate_request

from hub.attachments.service import attachment_summaries
from hub.http.identity import audit, current_principal, current_router, current_storage
from hub.http.metrics import request_started
from hub.http.openapi import errors, responds
from hub.http.params import path_id
from hub.http.schemas import MessageAck, MessageIn
from hub.messaging import MessageRouter
from hub.storage.actor import SendTiming
from hub.storage.records import MessageDraft, StoredMessage
from hub.validation import message_content

blueprint = Blueprint("messages", __name__)


async def post_message(message: MessageDraft, *, group_id: UUID | None = None) -> StoredMessage:
    """Post through the router with the request's audit row (sender, client, message kind; the
    body stays out of the audit trail, it is encrypted at rest for a reason). The router decides
    the sender's access inside the write, and gives the audit row the thread's group when the
    caller does not know it."""
    router: MessageRouter = current_router()
    entry = audit(
        "message.send",
        "message",
        message.client_msg_id,
        group_id=group_id,
        details={"thread_id": str(message.thread_id), "kind": message.kind},
    )
    # A repeated client_msg_id stores nothing, so it is not audited a second time.
    return await router.post(
        current_principal(),
        message,
        audit=lambda stored: () if stored.duplicate else [entry],
        # Send→commit starts when the request reached the app (hub.metrics).
        timing=SendTiming(request_started()),
    )


@blueprint.post("/threads/<thread_id>")
@errors(400, 403, 404, 409, 422)
@responds(MessageAck, 201)
@responds(MessageAck, 200)
@validate_request(MessageIn)
async def send_message(thread_id: str, data: MessageIn) -> tuple[MessageAck, int]:
    """Send a message to a thread (any active member).

    201 with the stored message's id, seq and created_at. Repeating a `client_msg_id` (per
    sender and thread) answers 200 with the original message and stores nothing. Without a
    `client_msg_id` the server makes one, and retries cannot be recognised.
    `kind=location` needs `latitude` and `longitude`. `kind=attachment` needs `attachment_ids`,
    uploads of the sender to this thread not yet attached (400 naming the one that is not);
    the message's `metadata.attachments` then describes them. `reply_to` must be a message id
    of the same thread (400 otherwise).
    """
    tid = path_id("thread_id", thread_id)
    body, metadata = message_content(
        data.kind, data.body, data.metadata, data.latitude, data.longitude, data.attachment_ids
    )
    principal = current_principal()
    client_msg_id = data.client_msg_id or uuid.uuid4().hex
    if data.attachment_ids:
        metadata["attachments"] = await attachment_summaries(
            current_storage(), principal, tid, data.attachment_ids, client_msg_id
        )
    stored = await post_message(
        MessageDraft(
            thread_id=tid,
            sender_user_id=principal.user_id,
            sender_org_id=principal.org_id,
            client_msg_id=client_msg_id,
            body=body,
            kind=data.kind,
            reply_to=data.reply_to,
            metadata=metadata,
            attachment_ids=tuple(data.attachment_ids),
        ),
    )
    ack = MessageAck(
        id=stored.id,
        thread_id=stored.thread_id,
        seq=stored.seq,
        client_msg_id=client_msg_id,
        created_at=stored.created_at,
        duplicate=stored.duplicate,
    )
    return ack, 200 if stored.duplicate else 201
