"""The hub's exceptions as WebSocket `error` frames: the one mapping, used by every session.

An archived (read-only) thread is a `Conflict` inside the hub; on the wire it is `forbidden`, the
code a client already handles as "you may not do that here". `storage_unavailable` means nothing
was stored and the request may be retried (with the same client_msg_id for messages).
"""

from __future__ import annotations

from uuid import UUID

from hub import protocol
from hub.errors import Conflict, HubError, RateLimited

_CODES: dict[str, protocol.ErrorCode] = {
    "invalid": "invalid",
    "unauthorized": "unauthorized",
    "forbidden": "forbidden",
    "not_found": "not_found",
    "rate_limited": "rate_limited",
    "overloaded": "overloaded",
    "storage_unavailable": "storage_unavailable",
}


def error_frame(
    error: HubError, ref: str | None = None, thread_id: UUID | None = None
) -> protocol.Error:
    code: protocol.ErrorCode = (
        "forbidden" if isinstance(error, Conflict) else _CODES.get(error.code, "internal")
    )
    return protocol.Error(
        code=code,
        message=error.message if code != "internal" else "internal error",
        ref=ref,
        thread_id=thread_id,
        retry_after_s=round(error.retry_after_s, 3) if isinstance(error, RateLimited) else None,
    )


def internal_error(ref: str | None = None) -> protocol.Error:
    return protocol.Error(code="internal", message="internal error", ref=ref)
