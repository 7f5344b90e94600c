"""A minimal broadcast server on the `websockets` library (asyncio): the yardstick for the hub.

    python -m bench.peers --port 9001

Rooms, fan-out to room members, nothing else: no persistence, no authentication (the
`Authorization` header is ignored), no encryption, no presence, no rate limits, no bounded queues.
It speaks the subset of the hub's frames the load swarm uses, so the same swarm drives both:

    (connect)                         → ready
    join_thread {thread_id, ref}      → ack {ref, thread_id, last_seq}
    leave_thread {thread_id, ref}     → ack {ref, thread_id}
    send_message {thread_id, body, client_msg_id, metadata, ref}
                                      → ack {ref, thread_id, message:{id, seq, created_at}}
                                        and new_message to the room's other members
    ping {ref}                        → pong {ref}

A room's seq is a counter in memory, so the swarm's exact-once and in-order checks apply to it as
to the hub. Each new_message is encoded once and handed to every member with
`websockets.broadcast` (which writes without waiting for slow readers) — the same encode-once
fan-out the hub does, minus everything that makes the hub a product. The difference in the
bench's figures is what persistence, auth and encryption cost.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import signal
import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec
from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed

WS_PATH = "/api/vendor-connections/websocket"

_decode = msgspec.json.Decoder(dict[str, Any]).decode
_encode = msgspec.json.Encoder().encode


class Room:
    __slots__ = ("members", "seq")

    def __init__(self) -> None:
        self.members: set[ServerConnection] = set()
        self.seq = 0


class BroadcastPeer:
    def __init__(self) -> None:
        self.rooms: dict[str, Room] = {}
        self._message_ids = itertools.count(1)
        self._session_ids = itertools.count(1)

    async def handle(self, ws: ServerConnection) -> None:
        user_id = str(uuid.uuid4())
        joined: dict[str, Room] = {}
        await ws.send(
            _encode(
                {
                    "type": "ready",
                    "user_id": user_id,
                    "session_id": f"p{next(self._session_ids)}",
                    "heartbeat_s": 20.0,
                    "expires_at": 0.0,
                }
            ).decode()
        )
        try:
            async for raw in ws:
                await self._receive(ws, user_id, joined, raw)
        except ConnectionClosed:
            pass
        finally:
            for room in joined.values():
                room.members.discard(ws)

    async def _receive(
        self, ws: ServerConnection, user_id: str, joined: dict[str, Room], raw: str | bytes
    ) -> None:
        try:
            frame = _decode(raw)
        except msgspec.DecodeError:
            await _error(ws, "invalid", "malformed JSON", None)
            return
        kind, ref = frame.get("type"), frame.get("ref")
        thread_id = frame.get("thread_id")
        if kind == "send_message":
            room = joined.get(thread_id)
            if room is None:
                await _error(ws, "forbidden", "join the thread first", ref)
                return
            room.seq += 1
            message_id = next(self._message_ids)
            created_at = datetime.now(UTC).isoformat()
            out = {
                "type": "new_message",
                "thread_id": thread_id,
                "message": {
                    "id": message_id,
                    "seq": room.seq,
                    "sender_id": user_id,
                    "sender_name": "peer user",
                    "org_id": user_id,
                    "kind": frame.get("kind", "text"),
                    "body": frame.get("body", ""),
                    "client_msg_id": frame.get("client_msg_id", ""),
                    "reply_to": None,
                    "metadata": frame.get("metadata", {}),
                    "created_at": created_at,
                },
            }
            broadcast([m for m in room.members if m is not ws], _encode(out).decode())
            ack = {
                "type": "ack",
                "ref": ref,
                "thread_id": thread_id,
                "message": {"id": message_id, "seq": room.seq, "created_at": created_at},
            }
            await ws.send(_encode(ack).decode())
        elif kind == "join_thread" and isinstance(thread_id, str):
            room = self.rooms.setdefault(thread_id, Room())
            room.members.add(ws)
            joined[thread_id] = room
            ack = {"type": "ack", "ref": ref, "thread_id": thread_id, "last_seq": room.seq}
            await ws.send(_encode(ack).decode())
        elif kind == "leave_thread" and isinstance(thread_id, str):
            room = joined.pop(thread_id, None)
            if room is not None:
                room.members.discard(ws)
            await ws.send(_encode({"type": "ack", "ref": ref, "thread_id": thread_id}).decode())
        elif kind == "ping":
            await ws.send(_encode({"type": "pong", "ref": ref}).decode())
        else:
            await _error(ws, "invalid", f"unsupported frame {kind!r}", ref)


async def _error(ws: ServerConnection, code: str, message: str, ref: Any) -> None:
    await ws.send(_encode({"type": "error", "code": code, "message": message, "ref": ref}).decode())


async def serve_forever(host: str, port: int) -> None:
    peer = BroadcastPeer()
    stop = asyncio.get_running_loop().create_future()
    for signum in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set_result, None)
    async with serve(
        peer.handle,
        host,
        port,
        compression=None,  # the hub does not compress either
        max_size=1024 * 1024,
        backlog=4096,  # like trio's listener, so a fast ramp is not refused at accept
    ):
        await stop


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.peers", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9001)
    args = parser.parse_args()
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(serve_forever(args.host, args.port))
