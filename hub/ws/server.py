"""The WebSocket transport: trio-websocket on HUB_WS_HOST:HUB_WS_PORT.

Everything before a session exists happens here: the path, the Origin check (403), the total
connection limit (503), authentication (the `Authorization: Bearer` header, or a first `auth`
frame within `ws_auth_timeout_s`; a bad or missing token gets `error unauthorized` and close
4001, a first frame that does not decode `error invalid` and 4001, a binary one 1003), the
identity upsert, and the per-user connection limit (`error overloaded`, close 4029). Then the
session actor owns the socket.

Every connection ends within `ws_close_timeout_s` of its close: the close frame goes out, the
peer's answer is awaited that long, and then the TCP connection is dropped whatever the peer
does (`hub.ws.internals.drop_connection`). A frame that breaks RFC 6455 is answered with close
1002 (1007 for a text frame that is not UTF-8) before the connection goes
(`hub.ws.internals.fix_close_handling`). Those two, and the direct writes and pings of a
session's socket (hub.ws.connection), rely on trio-websocket internals: `run` checks that they
are still there before it listens (`hub.ws.internals.check_shape`). This module uses
trio-websocket's documented API only.

trio-websocket closes a connection with 1009 when a message exceeds its `max_message_size`; the
protocol wants oversized frames answered with `invalid` on a live connection, so the transport
limit is set to 16 x `ws_max_frame` (a memory guard) and the session enforces `ws_max_frame`.

Shutdown: when `shutdown` is set the listener stops, every session is asked to close with 1001
(flushing what it had queued), and connections still open after the close timeout are cancelled.
Only then does `run` return, so the storage is flushed after the last socket is gone.
"""

from __future__ import annotations

import logging
from functools import partial

import trio
from trio_websocket import (
    ConnectionClosed,
    Endpoint,
    WebSocketConnection,
    WebSocketRequest,
    serve_websocket,
)

from hub import protocol
from hub.actors.session import USER_AGENT_MAX, Peer, Session
from hub.actors.supervisor import Supervisor
from hub.auth import Principal, TokenVerifier
from hub.errors import HubError, Invalid, Overloaded, Unauthorized
from hub.frames import error_frame
from hub.ws.connection import Connection
from hub.ws.internals import check_shape, drop_connection, fix_close_handling

log = logging.getLogger(__name__)

WS_PATH = "/api/vendor-connections/websocket"


class WebSocketServer:
    """Accepts the hub's sockets: everything before a session exists (see the module)."""

    def __init__(self, supervisor: Supervisor, verifier: TokenVerifier) -> None:
        self._supervisor = supervisor
        self._settings = supervisor.settings
        self._verifier = verifier
        self._handshaking = 0
        self._closing = False
        metrics = supervisor.metrics
        self._refused = metrics.ws_refused
        self._frames_in = metrics.frames_in
        self._frames_in_invalid = metrics.frames_in_invalid
        self._errors_out = metrics.frames_out[protocol.Error]

    @property
    def sockets_open(self) -> int:
        """WebSocket connections open now: sessions, and sockets still handshaking or
        authenticating."""
        return self._supervisor.connections + self._handshaking

    async def run(
        self, shutdown: trio.Event, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve until `shutdown`; reports the ws:// URL once listening. Raises
        `TrioWebSocketChanged` first if trio-websocket is not the shape hub.ws.internals needs."""
        check_shape()
        settings = self._settings
        async with trio.open_nursery() as connections:
            async with trio.open_nursery() as listening:
                server = await listening.start(
                    partial(
                        serve_websocket,
                        self._handle,
                        settings.ws_host,
                        settings.ws_port,
                        None,
                        handler_nursery=connections,
                        max_message_size=settings.ws_max_frame * 16,
                        connect_timeout=settings.ws_auth_timeout_s,
                        disconnect_timeout=settings.ws_close_timeout_s,
                    )
                )
                task_status.started(f"ws://{settings.ws_host}:{server.port}{WS_PATH}")
                await shutdown.wait()
                listening.cancel_scope.cancel()
            self._closing = True
            sessions = self._supervisor.sessions.all()
            log.info("websocket: stopped accepting; closing %d sessions with 1001", len(sessions))
            for session in sessions:
                session.close(protocol.CLOSE_GOING_AWAY, "server shutting down")
            connections.cancel_scope.deadline = trio.current_time() + settings.ws_close_timeout_s

    async def _handle(self, request: WebSocketRequest) -> None:
        fix_close_handling(request)
        if request.path.split("?", 1)[0] != WS_PATH:
            self._refused["path"].inc()
            await request.reject(404, body=b"not found")
            return
        headers = {name.lower(): value for name, value in request.headers}
        origin = headers.get(b"origin")
        if origin is not None and not self._origin_allowed(origin.decode("latin-1")):
            self._refused["origin"].inc()
            await request.reject(403, body=b"origin not allowed")
            return
        total = self._supervisor.connections + self._handshaking
        if self._closing or total >= self._settings.ws_max_connections:
            self._refused["shutting_down" if self._closing else "max_connections"].inc()
            await request.reject(503, extra_headers=[(b"retry-after", b"5")], body=b"busy")
            return
        self._handshaking += 1
        handshaking = True
        try:
            ws = await request.accept()
        except ConnectionClosed:
            self._handshaking -= 1
            return
        try:
            principal = await self._authenticate(ws, headers.get(b"authorization"))
            if principal is None:
                return
            try:
                await self._supervisor.ensure_identity(principal)
            except Unauthorized as exc:  # an erased user's token: theirs no longer opens a door
                self._refused["unauthorized"].inc()
                await self._refuse(ws, error_frame(exc), protocol.CLOSE_UNAUTHORIZED, "erased")
                return
            except HubError as exc:
                self._refused["unavailable"].inc()
                await self._refuse(ws, error_frame(exc), protocol.CLOSE_INTERNAL, "try again")
                return
            self._handshaking -= 1
            handshaking = False
            await self._serve(ws, principal, headers)
        except ConnectionClosed:
            pass
        except Exception:
            # The one place an unexpected failure of a connection is caught, before or after
            # authentication: it must end this socket, never the server (it would otherwise
            # escape into the handler nursery every connection shares).
            log.exception("websocket connection failed; closing it with 1011")
            with trio.move_on_after(self._settings.ws_close_timeout_s):
                await ws.aclose(protocol.CLOSE_INTERNAL, "internal error")
        finally:
            if handshaking:
                self._handshaking -= 1
            with trio.CancelScope(shield=True):
                await drop_connection(ws, self._settings.ws_close_timeout_s)

    async def _serve(
        self, ws: WebSocketConnection, principal: Principal, headers: dict[bytes, bytes]
    ) -> None:
        session = Session(
            Connection(ws), principal, self._supervisor, self._verifier, _peer(ws, headers)
        )
        try:
            await self._supervisor.admit(session)
        except Overloaded as exc:
            self._refused["per_user_limit"].inc()
            await self._refuse(
                ws, error_frame(exc), protocol.CLOSE_TOO_MANY_CONNECTIONS, "too many connections"
            )
            return
        try:
            await session.run()
        finally:
            self._supervisor.release(session)

    async def _authenticate(
        self, ws: WebSocketConnection, authorization: bytes | None
    ) -> Principal | None:
        """The caller's principal, or None after refusing them (4001; 1003 for binary)."""
        token: str | None = None
        if authorization is not None:
            scheme, _, value = authorization.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and value.strip():
                token = value.strip()
        try:
            if token is None:
                token = await self._first_frame_token(ws)
            return self._verifier.verify(token)
        except _BinaryFrame as exc:
            self._refused["unauthorized"].inc()
            await self._refuse(
                ws, error_frame(exc), protocol.CLOSE_UNSUPPORTED_DATA, "binary frame"
            )
        except (Invalid, Unauthorized) as exc:
            self._refused["unauthorized"].inc()
            await self._refuse(ws, error_frame(exc), protocol.CLOSE_UNAUTHORIZED, "unauthorized")
        return None

    async def _first_frame_token(self, ws: WebSocketConnection) -> str:
        """The token of the first frame; Unauthorized if it is not an `auth` frame or does
        not come in time, Invalid if it cannot be decoded at all."""
        timeout_s = self._settings.ws_auth_timeout_s
        raw: str | bytes | None = None
        with trio.move_on_after(timeout_s):
            raw = await ws.get_message()
        if raw is None:
            raise Unauthorized(
                "authenticate with an Authorization: Bearer header or a first auth frame "
                f"within {timeout_s:g}s"
            )
        if isinstance(raw, bytes):
            self._frames_in_invalid.inc()
            raise _BinaryFrame(BINARY_REFUSED)
        limit = self._settings.ws_max_frame
        if len(raw) > limit and len(raw.encode()) > limit:
            self._frames_in_invalid.inc()
            raise Invalid(f"first frame larger than {limit} bytes")
        try:
            frame = protocol.decode_client(raw)
        except protocol.ProtocolError as exc:
            self._frames_in_invalid.inc()
            raise Invalid(f"first frame: {exc.message}; it must be an auth frame") from None
        self._frames_in[type(frame)].inc()
        if not isinstance(frame, protocol.Auth):
            raise Unauthorized(
                f"the first frame was {_frame_type(frame)}: authenticate with an auth frame "
                "or an Authorization: Bearer header first"
            )
        return frame.token

    async def _refuse(
        self, ws: WebSocketConnection, error: protocol.Error, code: int, reason: str
    ) -> None:
        """Send `error` and close with `code`, all within the close timeout: a peer that does
        not read, or never answers the close frame, loses the connection then (and the caller
        drops it), instead of holding a descriptor and a handshake slot."""
        self._errors_out.inc()
        with trio.move_on_after(self._settings.ws_close_timeout_s):
            try:
                await ws.send_message(protocol.encode(error))
            except ConnectionClosed:
                pass
            finally:
                await ws.aclose(code, reason)

    def _origin_allowed(self, origin: str) -> bool:
        allowed = self._settings.ws_origins
        if not allowed:
            # No list configured: development accepts any origin; production accepts none.
            return not self._settings.production
        return origin.rstrip("/") in allowed


def _peer(ws: WebSocketConnection, headers: dict[bytes, bytes]) -> Peer:
    """The socket's address and User-Agent, as REST audit rows record them."""
    try:
        remote = ws.remote
    except OSError:  # already gone
        remote = ""
    ip = str(remote.address) if isinstance(remote, Endpoint) else None
    user_agent = headers.get(b"user-agent", b"").decode("latin-1")[:USER_AGENT_MAX]
    return Peer(ip=ip, user_agent=user_agent or None)


BINARY_REFUSED = "binary frames are not accepted: every frame is a JSON text frame"


class _BinaryFrame(Invalid):
    """A binary frame where the protocol has only text: refused with close 1003."""


def _frame_type(frame: protocol.ClientFrame) -> str:
    return type(frame).__struct_config__.tag  # type: ignore[attr-defined,no-any-return]
