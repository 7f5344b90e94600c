"""Requests to a running hub over a real socket, from the standard library's HTTP client in a
worker thread: what a plain program talking to the hub sees."""

from __future__ import annotations

import http.client
import json
from typing import Any
from urllib.parse import urlsplit

import trio

from hub.app import Running
from tests.factories import Member


def exchange(
    url: str, method: str, path: str, token: str | None, body: bytes | None
) -> tuple[int, Any, http.client.HTTPMessage]:
    """One request on a connection of its own: (status, decoded JSON body, headers)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        conn.request(method, parts.path + path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"null"), response.headers
    finally:
        conn.close()


async def call(
    hub: Running,
    method: str,
    path: str,
    who: Member | str | None = None,
    body: Any = None,
    *,
    raw: bytes | None = None,
) -> tuple[int, Any, http.client.HTTPMessage]:
    """`exchange` as `who` (a member or a bare token) with `body` as JSON, or `raw` bytes."""
    token = who.token if isinstance(who, Member) else who
    payload = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    # A limiter of its own: threads from Trio's default one are the worker threads the hub's
    # SQLite engine needs to answer these very requests, and concurrent calls would take them.
    limiter = trio.CapacityLimiter(1)
    return await trio.to_thread.run_sync(
        exchange, hub.rest_url, method, path, token, payload, limiter=limiter
    )
