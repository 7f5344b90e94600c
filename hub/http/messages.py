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

from hub.http.identity import audit, current_principal, current_router, current_storage
from hub.http.metrics import request_started
from hub.http.openapi import errors, responds
from hub.http.params import path_id
from hub.http.schemas import MessageAck, MessageIn
from hub.messaging import MessageRouter, compose_draft
from hub.storage.actor import SendTiming
from hub.storage.records import MessageDraft, StoredMessage

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
    of the same thread (400 otherwise). `@name` of a member user or `@org` of a member
    organization in the body is a mention (`metadata.mentions`): they are notified.
    `requires_ack` (always for `kind=change`, a change of plan) asks every other member
    organization to acknowledge it (`POST /threads/{id}/messages/{seq}/ack`).
    """
    tid = path_id("thread_id", thread_id)
    client_msg_id = data.client_msg_id or uuid.uuid4().hex
    draft = await compose_draft(
        current_storage(),
        current_principal(),
        tid,
        client_msg_id=client_msg_id,
        kind=data.kind,
        body=data.body,
        metadata=data.metadata,
        latitude=data.latitude,
        longitude=data.longitude,
        attachment_ids=data.attachment_ids,
        reply_to=data.reply_to,
        requires_ack=data.requires_ack,
    )
    stored = await post_message(draft)
    ack = MessageAck(
        id=stored.id,
        thread_id=stored.thread_id,
        seq=stored.seq,
        client_msg_id=client_msg_id,
        created_at=stored.created_at,
        duplicate=stored.duplicate,
    )
    return ack, 200 if stored.duplicate else 201
