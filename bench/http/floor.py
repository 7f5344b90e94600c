"""The framework's floor: bare Quart-Trio on Hypercorn, answering the bench's routes with canned
bodies of the hub's shape and size, and doing nothing else (no auth, storage or encryption).

    python -m bench.http --floor [--rate 500]

What `bench.http` measures against this server is what serving those requests costs before the
hub does any work of its own: the hub's CPU per request minus this one's is the hub's share.
Served the way `hub serve` serves (`hub.http.server.serve_http`, `hub.cli.tune_runtime`).
"""

from __future__ import annotations

import argparse
import itertools
import uuid
from datetime import UTC, datetime

import msgspec
import trio
from quart import Response
from quart_trio import QuartTrio

from hub.cli import tune_runtime
from hub.http.schemas import MessageOut, ThreadDetail, ThreadOut
from hub.http.server import serve_http

BASE = "/api/vendor-connections"


def _thread_page() -> bytes:
    """A 50-message page as `GET /threads/{id}?limit=50` answers it to the bench."""
    now = datetime.now(UTC)
    user, org, thread = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    detail = ThreadDetail(
        thread=ThreadOut(
            id=thread,
            group_id=uuid.uuid4(),
            title="Timeline",
            thread_type="general",
            priority="normal",
            status="open",
            created_by=user,
            created_at=now,
            updated_at=now,
            message_count=50,
            unread_count=0,
            last_read_seq=50,
            last_message_at=now,
        ),
        presence=[],
        read_receipts=[],
        messages=[
            MessageOut(
                id=seq,
                seq=seq,
                sender_user_id=user,
                sender_org_id=org,
                sender_name="Bench User",
                kind="text",
                body=f"history {seq - 1}",
                client_msg_id=uuid.uuid4().hex,
                metadata={},
                created_at=now,
            )
            for seq in range(1, 51)
        ],
        has_more=False,
    )
    return msgspec.json.encode(detail)


def make_app() -> QuartTrio:
    app = QuartTrio(__name__)
    page = _thread_page()
    ids = itertools.count(1)

    async def created(**_: str) -> Response:
        body = msgspec.json.encode({"id": str(uuid.uuid4()), "seq": next(ids)})
        return Response(body, status=201, content_type="application/json")

    @app.get(f"{BASE}/threads/<thread_id>")
    async def get_thread(thread_id: str) -> Response:
        return Response(page, content_type="application/json")

    for path in ("/groups", "/threads", "/threads/<thread_id>"):
        app.add_url_rule(
            f"{BASE}{path}",
            endpoint=f"post {path}",
            view_func=created,
            methods=["POST"],
        )
    return app


async def main(host: str, port: int) -> None:
    await serve_http(make_app(), host, port, trio.Event(), idle_timeout_s=30.0)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.http.floor", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    tune_runtime()
    trio.run(main, args.host, args.port)
