"""What the server sends, down to the bytes: RFC 6455 frames around encoded protocol frames, and
the hub's exceptions as `error` frames. Pure: no I/O, no socket, no trio-websocket.

Fan-out sends the same event to every subscriber of a thread. A server-to-client WebSocket frame
is not masked and this server negotiates no extension, so the bytes of a text frame depend on the
payload alone: the thread actor encodes an event once (`event_frame`) and the transport
(hub.ws.connection) writes those same bytes on every subscriber's socket (docs/performance.md,
decision register: "Encode-once fan-out, direct socket writes"). tests/realtime/test_wire.py
checks them against wsproto's own encoding at every length boundary.

Errors: `error_frame` is the one mapping from `HubError` to the protocol's error codes, used by
the transport and the actors alike. An archived (read-only) thread is a `Conflict` inside the
hub; on the wire it is `forbidden`, the code a client already handles as "you may not do that
here". `storage_unavailable` means nothing was stored and the request may be retried (with the
same client_msg_id for messages).
"""

from __future__ import annotations

import struct
from uuid import UUID

from hub import protocol
from hub.errors import Conflict, HubError, RateLimited

_TEXT_FIN = 0x81
_PING_FIN = 0x89
PING_PAYLOAD_MAX = 125  # a control frame's payload (RFC 6455 5.5)


def text_frame(payload: bytes) -> bytes:
    """A final, unmasked text frame carrying `payload` (UTF-8 JSON)."""
    size = len(payload)
    if size < 126:
        header = bytes((_TEXT_FIN, size))
    elif size < 1 << 16:
        header = struct.pack("!BBH", _TEXT_FIN, 126, size)
    else:
        header = struct.pack("!BBQ", _TEXT_FIN, 127, size)
    return header + payload


def ping_frame(payload: bytes) -> bytes:
    """An unmasked ping frame (RFC 6455 5.5.2), for a writer that owns the socket's bytes."""
    if len(payload) > PING_PAYLOAD_MAX:
        raise ValueError(f"a ping payload is at most {PING_PAYLOAD_MAX} bytes")
    return bytes((_PING_FIN, len(payload))) + payload


def event_frame(event: protocol.ServerFrame) -> bytes:
    """An event as the bytes every subscriber's socket receives."""
    return text_frame(protocol.encode_bytes(event))


def frame_payload(frame: bytes) -> bytes:
    """The payload of a frame made by `text_frame` (for tests and tools that read them back)."""
    size = frame[1] & 0x7F
    offset = 2 if size < 126 else 4 if size == 126 else 10
    return frame[offset:]


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
    """The `error` frame that answers `error`; anything without a code of its own is
    `internal`, with no detail."""
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
    """The answer to a request that failed in a way the hub cannot explain (a bug, logged)."""
    return protocol.Error(code="internal", message="internal error", ref=ref)
