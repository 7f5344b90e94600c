"""The WebSocket transport: trio-websocket on HUB_WS_HOST:HUB_WS_PORT.

Everything before a session exists happens here: the path, the Origin check (403), the total
connection limit (503), authentication (the `Authorization: Bearer` header, or a first `auth`
frame within `ws_auth_timeout_s`; a bad or missing token gets `error unauthorized` and close
4001), the identity upsert, and the per-user connection limit (`error overloaded`, close 4029).
Then the session actor owns the socket.

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
from hub.errors import HubError, Overloaded, Unauthorized
from hub.ws.errors import error_frame

log = logging.getLogger(__name__)

WS_PATH = "/api/vendor-connections/websocket"


class WebSocketServer:
    def __init__(self, supervisor: Supervisor, verifier: TokenVerifier) -> None:
        self._supervisor = supervisor
        self._settings = supervisor.settings
        self._verifier = verifier
        self._handshaking = 0
        self._closing = False

    async def run(
        self, shutdown: trio.Event, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve until `shutdown`; reports the ws:// URL once listening."""
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
            sessions = self._supervisor.sessions()
            log.info("websocket: stopped accepting; closing %d sessions with 1001", len(sessions))
            for session in sessions:
                session.close(protocol.CLOSE_GOING_AWAY, "server shutting down")
            connections.cancel_scope.deadline = trio.current_time() + settings.ws_close_timeout_s

    async def _handle(self, request: WebSocketRequest) -> None:
        if request.path.split("?", 1)[0] != WS_PATH:
            await request.reject(404, body=b"not found")
            return
        headers = {name.lower(): value for name, value in request.headers}
        origin = headers.get(b"origin")
        if origin is not None and not self._origin_allowed(origin.decode("latin-1")):
            await request.reject(403, body=b"origin not allowed")
            return
        total = self._supervisor.connections + self._handshaking
        if self._closing or total >= self._settings.ws_max_connections:
            await request.reject(503, extra_headers=[(b"retry-after", b"5")], body=b"busy")
            return
        self._handshaking += 1
        try:
            ws = await request.accept()
            principal = await self._authenticate(ws, headers.get(b"authorization"))
            if principal is None:
                return
            try:
                await self._supervisor.ensure_identity(principal)
            except HubError as exc:
                await _refuse(ws, error_frame(exc), protocol.CLOSE_INTERNAL, "try again")
                return
        except ConnectionClosed:
            return
        finally:
            self._handshaking -= 1
        session = Session(ws, principal, self._supervisor, self._verifier, _peer(ws, headers))
        try:
            self._supervisor.admit(session)
        except Overloaded as exc:
            await _refuse(
                ws, error_frame(exc), protocol.CLOSE_TOO_MANY_CONNECTIONS, "too many connections"
            )
            return
        try:
            await session.run()
        except Exception:
            # The one place a session's unexpected failure is caught: it must end this socket,
            # never the server (it would otherwise escape into the shared handler nursery).
            log.exception("session %s failed; closing its socket", session.session_id)
            with trio.move_on_after(1):
                await ws.aclose(protocol.CLOSE_INTERNAL, "internal error")
        finally:
            self._supervisor.release(session)

    async def _authenticate(
        self, ws: WebSocketConnection, authorization: bytes | None
    ) -> Principal | None:
        """The caller's principal, or None after refusing them with 4001."""
        token: str | None = None
        if authorization is not None:
            scheme, _, value = authorization.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and value.strip():
                token = value.strip()
        if token is None:
            token = await self._first_frame_token(ws)
        try:
            if token is None:
                raise Unauthorized(
                    "authenticate with an Authorization: Bearer header or a first auth frame "
                    f"within {self._settings.ws_auth_timeout_s:g}s"
                )
            return self._verifier.verify(token)
        except Unauthorized as exc:
            await _refuse(ws, error_frame(exc), protocol.CLOSE_UNAUTHORIZED, "unauthorized")
            return None

    async def _first_frame_token(self, ws: WebSocketConnection) -> str | None:
        with trio.move_on_after(self._settings.ws_auth_timeout_s):
            raw = await ws.get_message()
            if len(raw) > self._settings.ws_max_frame:
                return None
            try:
                frame = protocol.decode_client(raw)
            except protocol.ProtocolError:
                return None
            return frame.token if isinstance(frame, protocol.Auth) else None
        return None

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


async def _refuse(ws: WebSocketConnection, error: protocol.Error, code: int, reason: str) -> None:
    try:
        await ws.send_message(protocol.encode(error))
        await ws.aclose(code, reason)
    except ConnectionClosed:
        pass
