"""The webhook channel: a notification POSTed as signed JSON to a URL a vendor registered.

Each delivery is one HTTP/1.1 request on a connection of its own (h11 over a Trio stream),
made to an address `resolve_public` vetted, never to a name resolved again. Its headers:

    X-Hub-Timestamp: 1767225600                 Unix seconds when it was signed
    X-Hub-Signature-256: sha256=<hex>           HMAC-SHA256(secret, b"<timestamp>." + body)
    X-Hub-Event: mention                        what happened
    X-Hub-Delivery / Idempotency-Key: <id>      the same on every retry of one delivery

A receiver checks a delivery with `verify_signature` (or the same few lines in its language):
the signature over the exact bytes of the body, compared in constant time, and the timestamp
within five minutes of its own clock, so a captured request cannot be replayed later. The secret
is the whole string `new_secret` gave, `whsec_` included, as UTF-8 bytes.

The answer decides what the dispatcher does: 2xx is delivered; 5xx, 408, 429, a timeout or a
broken connection are worth another try; any other 4xx is permanent. A redirect is not followed
and is permanent: its location was never vetted by the SSRF guard, and the same URL will answer
the same way until its owner registers the new one.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import re
import secrets
import ssl
import time
from collections.abc import Callable

import h11
import trio

from hub.notifications.addresses import IPAddress, WebhookTarget, resolve_public
from hub.notifications.failures import DeliveryFailed, printable

USER_AGENT = "vendor-connections-hub"
SIGNATURE_PREFIX = "sha256="
SECRET_PREFIX = "whsec_"  # noqa: S105 (a label, not a secret)
RESPONSE_BODY_MAX = 64 * 1024
"""The most of an answer's body read (and dropped): a receiver has nothing to tell but its
status, and one streaming a large body must not hold a dispatcher's slot."""
RESPONSE_HEAD_MAX = 16 * 1024
SNIPPET_MAX = 200
_EVENT = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_DELIVERY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


def new_secret() -> str:
    """A signing secret for a new webhook, shown to its owner once: 32 random bytes."""
    return SECRET_PREFIX + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The X-Hub-Signature-256 value of `body` sent at `timestamp`."""
    digest = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return SIGNATURE_PREFIX + digest


def verify_signature(
    secret: bytes,
    timestamp_header: str,
    signature_header: str,
    body: bytes,
    *,
    now: float,
    tolerance_s: float = 300,
) -> bool:
    """Whether a delivery is the hub's and recent: the receiver's side of `sign`.

    `body` must be the bytes as received, before any JSON parsing; `now` the receiver's Unix
    time. A timestamp more than `tolerance_s` away from it fails, as does anything malformed.
    """
    text = timestamp_header.strip()
    if not text.isascii() or not text.isdigit():
        return False
    timestamp = int(text)
    if abs(now - timestamp) > tolerance_s:
        return False
    expected = sign(secret, timestamp, body).encode()
    return hmac.compare_digest(expected, signature_header.strip().encode("utf-8", "replace"))


async def deliver(
    target: WebhookTarget,
    *,
    secret: bytes,
    body: bytes,
    event: str,
    delivery_id: str,
    allow_hosts: frozenset[str],
    timeout_s: float = 10.0,
    now: Callable[[], float] = time.time,
    ssl_context: ssl.SSLContext | None = None,
) -> int:
    """POST `body` (JSON) to `target`, signed with `secret`; the status when it is 2xx, or
    DeliveryFailed. The whole attempt, name resolution included, takes at most `timeout_s`.

    `ssl_context` replaces the system's trust (tests give their own CA); it must verify
    certificates, as the default does.
    """
    if not _EVENT.fullmatch(event):
        raise ValueError(f"event must be lower-case letters, digits and . _ -, got {event!r}")
    if not _DELIVERY_ID.fullmatch(delivery_id):
        raise ValueError("delivery_id must be letters, digits and . _ : - (at most 128)")
    timestamp = int(now())
    headers = [
        ("Host", target.host_header),
        ("User-Agent", USER_AGENT),
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(body))),
        ("X-Hub-Timestamp", str(timestamp)),
        ("X-Hub-Signature-256", sign(secret, timestamp, body)),
        ("X-Hub-Event", event),
        ("X-Hub-Delivery", delivery_id),
        ("Idempotency-Key", delivery_id),
        ("Connection", "close"),
    ]
    request = h11.Request(method="POST", target=target.target, headers=headers)
    with trio.move_on_after(timeout_s):
        addresses = await resolve_public(target, allow_hosts=allow_hosts)
        stream = await _connect(target, addresses, ssl_context)
        async with stream:
            status, reason, snippet = await _exchange(stream, request, body, target)
        return _verdict(status, reason, snippet, target)
    raise DeliveryFailed(f"webhook {target.host} did not answer within {timeout_s:g} s")


async def _connect(
    target: WebhookTarget, addresses: list[IPAddress], ssl_context: ssl.SSLContext | None
) -> trio.abc.Stream:
    """A connection to the first of the vetted addresses that takes one, in TLS for https with
    the certificate checked against the URL's host name, not the address."""
    failure: OSError | None = None
    for address in addresses:
        try:
            tcp = await trio.open_tcp_stream(str(address), target.port)
        except OSError as error:
            failure = error
            continue
        if target.scheme == "http":
            return tcp
        tls = trio.SSLStream(
            tcp,
            ssl_context or _system_trust(),
            server_hostname=target.server_hostname,
            # Many HTTPS servers close without TLS's close_notify; h11 knows from the headers
            # whether the answer was whole, so that is no truncation attack here.
            https_compatible=True,
        )
        try:
            await tls.do_handshake()
        except BaseException as error:
            # Refused, or cancelled by the deadline: either way the socket is not kept.
            await trio.aclose_forcefully(tcp)
            if isinstance(error, trio.BrokenResourceError):
                raise DeliveryFailed(
                    f"webhook {target.host}: TLS failed ({_tls_reason(error)})"
                ) from None
            raise
        return tls
    raise DeliveryFailed(
        f"webhook {target.host}: could not connect ({_os_reason(failure)})"
    ) from None


async def _exchange(
    stream: trio.abc.Stream, request: h11.Request, body: bytes, target: WebhookTarget
) -> tuple[int, str, str]:
    """Send the request, read the answer's head and at most RESPONSE_BODY_MAX of its body:
    (status, reason phrase, the start of the body as text)."""
    connection = h11.Connection(h11.CLIENT, max_incomplete_event_size=RESPONSE_HEAD_MAX)
    try:
        await stream.send_all(
            connection.send(request)
            + connection.send(h11.Data(data=body))
            + connection.send(h11.EndOfMessage())
        )
        response: h11.Response | None = None
        kept = bytearray()
        while True:
            event = connection.next_event()
            if event is h11.NEED_DATA:
                if len(kept) >= RESPONSE_BODY_MAX:
                    break
                data = await stream.receive_some(RESPONSE_BODY_MAX)
                connection.receive_data(data)
            elif isinstance(event, h11.InformationalResponse):
                continue
            elif isinstance(event, h11.Response):
                response = event
            elif isinstance(event, h11.Data):
                kept += event.data[: RESPONSE_BODY_MAX - len(kept)]
            else:  # EndOfMessage, or ConnectionClosed before an answer
                break
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as error:
        raise DeliveryFailed(
            f"webhook {target.host}: connection lost ({_os_reason(error)})"
        ) from None
    except h11.ProtocolError as error:
        raise DeliveryFailed(f"webhook {target.host}: malformed answer ({error})") from None
    if response is None:
        raise DeliveryFailed(f"webhook {target.host}: connection closed before an answer")
    snippet = printable(kept[: SNIPPET_MAX * 4].decode("utf-8", "replace"), SNIPPET_MAX)
    return response.status_code, response.reason.decode("latin-1"), snippet


def _verdict(status: int, reason: str, snippet: str, target: WebhookTarget) -> int:
    if 200 <= status < 300:
        return status
    line = printable(f"HTTP {status} {reason}", 80)
    said = f"{line}: {snippet}" if snippet else line
    if 300 <= status < 400:
        raise DeliveryFailed(
            f"webhook {target.host} answered {line}; redirects are not followed", permanent=True
        )
    transient = status in (408, 425, 429) or 500 <= status < 600
    raise DeliveryFailed(f"webhook {target.host} answered {said}", permanent=not transient)


@functools.cache
def _system_trust() -> ssl.SSLContext:
    """The system's certificate authorities, loaded once rather than at every delivery."""
    return ssl.create_default_context()


def _tls_reason(error: BaseException) -> str:
    cause = error.__cause__ or error.__context__
    if isinstance(cause, ssl.SSLCertVerificationError):
        return f"certificate not trusted: {cause.verify_message}"
    if isinstance(cause, ssl.SSLError):
        return cause.reason or type(cause).__name__
    return type(cause or error).__name__


def _os_reason(error: BaseException | None) -> str:
    if error is None:
        return "no address"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    cause = error.__cause__ or error.__context__
    return type(cause or error).__name__ if not str(error) else str(error)
