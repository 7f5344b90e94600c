"""The webhook receiver the bench runs itself: a small HTTP/1.1 server (h11 on Trio) that takes
the hub's deliveries, checks each as a vendor's receiver would, and records when it arrived.

Each organization's webhook is registered at `/hooks/<organization id>`, so the receiver picks
the secret to check a delivery with from the path it was sent to, never from what the body
claims. The signature is recomputed here from the documented format (docs/notifications.md:
`sha256=` and the hex HMAC-SHA256, keyed with the whole `whsec_…` secret, of
`<X-Hub-Timestamp>.` and the body's exact bytes) rather than with the hub's own
`verify_signature`, so that a change to the hub's signing that its own check followed would
still be caught. Every delivery is answered 200 at once: the bench measures the hub's side.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import h11
import trio

HOOK_PREFIX = "/hooks/"
TIMESTAMP_TOLERANCE_S = 300  # what the docs tell a receiver to accept
BODY_MAX = 1024 * 1024
REQUEST_TIMEOUT_S = 30.0


@dataclass
class Delivery:
    """One request the hub made to the receiver, as the receiver found it."""

    arrived_at: float  # time.time() when the request's last byte was read
    path_org: str  # the organization the URL's path names
    delivery_id: str  # X-Hub-Delivery
    idempotency_key: str  # Idempotency-Key (documented as the same as X-Hub-Delivery)
    event: str  # X-Hub-Event
    signature_ok: bool
    timestamp_ok: bool  # within TIMESTAMP_TOLERANCE_S of the receiver's clock
    body_ok: bool  # JSON naming the same organization as the path, with a message
    thread_id: str | None = None
    seq: int | None = None
    organization_id: str | None = None
    message_created_at: float | None = None  # Unix seconds, from the body
    user_ids: list[str] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, int, str]:
        """What it is about: (thread, seq, organization)."""
        return (self.thread_id or "", self.seq or 0, self.organization_id or "")


class Receiver:
    """Records every delivery in `deliveries`; `secrets` maps an organization id to the secret
    its webhook's creation returned (filled in once the webhooks are registered)."""

    def __init__(self) -> None:
        self.secrets: dict[str, bytes] = {}
        self.deliveries: list[Delivery] = []
        self.first: dict[tuple[str, int, str], Delivery] = {}  # each key's first delivery
        self.refused = 0  # requests that were not a delivery to a registered hook
        self.port: int | None = None
        self._arrived = trio.Event()

    async def wait_for(self, keys: set[tuple[str, int, str]]) -> None:
        """Return once a delivery about each of `keys` has arrived (the caller bounds it)."""
        missing = keys - self.first.keys()
        seen = len(self.deliveries)
        while missing:
            await self._arrived.wait()
            for delivery in self.deliveries[seen:]:
                missing.discard(delivery.key)
            seen = len(self.deliveries)

    async def serve(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen on a free loopback port until cancelled; `task_status` gets the port."""
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            await nursery.start(trio.serve_listeners, self._handle, listeners)
            task_status.started(self.port)

    async def _handle(self, stream: trio.SocketStream) -> None:
        async with stream:
            with trio.move_on_after(REQUEST_TIMEOUT_S):
                conn = h11.Connection(h11.SERVER, max_incomplete_event_size=64 * 1024)
                try:
                    await self._serve_connection(stream, conn)
                except (trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError):
                    pass  # the hub went away mid-request: it will try again, and count it

    async def _serve_connection(self, stream: trio.SocketStream, conn: h11.Connection) -> None:
        while True:
            request: h11.Request | None = None
            body = bytearray()
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(await stream.receive_some(64 * 1024))
                elif isinstance(event, h11.Request):
                    request = event
                elif isinstance(event, h11.Data):
                    body += event.data
                    if len(body) > BODY_MAX:
                        raise h11.LocalProtocolError("body too large")
                elif isinstance(event, h11.EndOfMessage):
                    break
                else:  # ConnectionClosed, or PAUSED after a close
                    return
            assert request is not None
            status = self._record(request, bytes(body), time.time())
            await stream.send_all(
                conn.send(h11.Response(status_code=status, headers=[("Content-Length", "0")]))
                + conn.send(h11.EndOfMessage())
            )
            if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                return  # the hub sends Connection: close with every delivery
            conn.start_next_cycle()

    def _record(self, request: h11.Request, body: bytes, arrived_at: float) -> int:
        target = request.target.decode("latin-1")
        org = target[len(HOOK_PREFIX) :] if target.startswith(HOOK_PREFIX) else ""
        secret = self.secrets.get(org)
        if request.method != b"POST" or secret is None:
            self.refused += 1
            return 404
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in request.headers}
        timestamp = headers.get("x-hub-timestamp", "")
        delivery = Delivery(
            arrived_at=arrived_at,
            path_org=org,
            delivery_id=headers.get("x-hub-delivery", ""),
            idempotency_key=headers.get("idempotency-key", ""),
            event=headers.get("x-hub-event", ""),
            signature_ok=signature_matches(
                secret, timestamp, headers.get("x-hub-signature-256", ""), body
            ),
            timestamp_ok=timestamp.isdigit()
            and abs(arrived_at - int(timestamp)) <= TIMESTAMP_TOLERANCE_S,
            body_ok=False,
        )
        _read_body(delivery, body)
        self.deliveries.append(delivery)
        if delivery.seq is not None:
            self.first.setdefault(delivery.key, delivery)
        self._arrived.set()
        self._arrived = trio.Event()
        return 200


def signature_matches(secret: bytes, timestamp: str, signature: str, body: bytes) -> bool:
    """Whether `signature` is `sha256=` and the hex HMAC-SHA256 of `<timestamp>.<body>` keyed
    with `secret`, compared in constant time."""
    if not timestamp.isascii() or not timestamp.isdigit():
        return False
    digest = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(f"sha256={digest}".encode(), signature.strip().encode())


def _read_body(delivery: Delivery, body: bytes) -> None:
    try:
        payload: dict[str, Any] = json.loads(body)
        message = payload["message"]
        delivery.thread_id = str(payload["thread"]["id"])
        delivery.seq = int(message["seq"])
        delivery.organization_id = str(payload["organization_id"])
        delivery.user_ids = [str(u) for u in payload.get("user_ids", [])]
        delivery.message_created_at = datetime.fromisoformat(message["created_at"]).timestamp()
    except (ValueError, KeyError, TypeError):
        return
    delivery.body_ok = (
        delivery.organization_id == delivery.path_org and payload.get("id") == delivery.delivery_id
    )
