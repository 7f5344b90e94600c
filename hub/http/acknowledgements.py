"""Acknowledgements over REST: confirming a message for one's organization, and the board of
who has confirmed it.

`POST /threads/{id}/messages/{seq}/ack` and the WebSocket's `ack_message` both go through
`hub.messaging.acknowledge_message`, so a confirmation is the same whichever door it came
through, and the thread's live subscribers get `message_acknowledged` either way.
"""

from __future__ import annotations

from quart import Blueprint

from hub.access import authorize_thread
from hub.http.identity import audit, current_principal, current_router, current_storage
from hub.http.openapi import errors, responds
from hub.http.params import path_id, path_seq
from hub.http.schemas import AcknowledgementOut, BoardEntryOut, BoardOut
from hub.messaging import acknowledge_message
from hub.storage.acknowledgements import board

blueprint = Blueprint("acknowledgements", __name__)


@blueprint.post("/threads/<thread_id>/messages/<seq>/ack")
@errors(400, 403, 404, 409, 422)
@responds(AcknowledgementOut, 201)
@responds(AcknowledgementOut, 200)
async def acknowledge(thread_id: str, seq: str) -> tuple[AcknowledgementOut, int]:
    """Confirm message `seq` for the caller's organization (any active member; the thread must
    not be archived). 201 with the confirmation; 200 with the earlier one when someone of the
    organization confirmed it already. 400 when the message asked for no acknowledgement or
    the caller's organization sent it. Its reminders stop at once."""
    tid, number = path_id("thread_id", thread_id), path_seq("seq", seq)
    entry = audit("message.acknowledge", "message", number, group_id=None)
    ack = await acknowledge_message(
        current_storage(), current_router(), current_principal(), tid, number, entry
    )
    out = AcknowledgementOut(
        thread_id=ack.thread_id,
        seq=ack.seq,
        org_id=ack.organization_id,
        user_id=ack.user_id,
        at=ack.acknowledged_at,
        duplicate=not ack.new,
        user_name=ack.user_name,
        org_name=ack.organization_name,
    )
    return out, 201 if ack.new else 200


@blueprint.get("/threads/<thread_id>/messages/<seq>/acknowledgements")
@errors(400, 404, 422)
@responds(BoardOut)
async def acknowledgements(thread_id: str, seq: str) -> BoardOut:
    """The board of message `seq`: every member organization of the group, with who confirmed
    it for them and when, or `pending` (with the reminders sent so far); the sender's own
    organization is `sender`. 400 when the message asked for no acknowledgement."""
    tid, number = path_id("thread_id", thread_id), path_seq("seq", seq)
    storage = current_storage()
    access = await authorize_thread(storage, current_principal(), tid, "read")
    result = await storage.read(board(access.group_id, tid, number))
    return BoardOut(
        thread_id=result.thread_id,
        seq=result.seq,
        pending=result.pending,
        organizations=[
            BoardEntryOut(
                org_id=e.organization_id,
                org_name=e.organization_name,
                state=e.state,
                user_id=e.user_id,
                user_name=e.user_name,
                at=e.acknowledged_at,
                reminders_sent=e.reminders_sent,
            )
            for e in result.entries
        ],
    )
