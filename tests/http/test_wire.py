"""The REST port byte for byte: bodies the app never read, ambiguous framing and stalled clients,
over raw TCP against the running hub (issue 16, items 3 and 6)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio

from hub.app import Running, run_hub
from hub.http.app import BASE_PATH
from tests.conftest import make_settings
from tests.factories import new_member
from tests.http.wire import Connection, chunked, request

GUARD_S = 15  # only a guard against a hang: every wait below ends on an event first
MB = 1024 * 1024


async def _send_in_background(nursery: trio.Nursery, conn: Connection, data: bytes) -> dict:
    """Send `data` while the test reads; the result says whether it all went out."""
    result: dict[str, bool] = {}

    async def send() -> None:
        result["sent"] = await conn.send(data)

    nursery.start_soon(send)
    return result


@pytest.mark.parametrize(
    ("what", "method", "path", "size", "authorized", "status"),
    [
        ("401 for no token, 2 MB", "POST", f"{BASE_PATH}/groups", 2 * MB, False, 401),
        ("413 over the limit, 2 MB", "POST", f"{BASE_PATH}/groups", 2 * MB, True, 413),
        ("GET healthz, 2 MB body", "GET", f"{BASE_PATH}/healthz", 2 * MB, False, 200),
        ("404, 600 KB body", "POST", "/nowhere", 600 * 1024, False, 404),
    ],
)
async def test_an_answer_before_a_large_body_is_read_leaves_no_connection_hanging(
    hub: Running, settings, what, method, path, size, authorized, status
):
    headers = [("Content-Type", "application/json"), ("Content-Length", str(size))]
    if authorized:
        member = await new_member(hub.storage, settings)
        headers.append(("Authorization", f"Bearer {member.token}"))
    conn = await Connection.open(hub.rest_url)
    with trio.fail_after(GUARD_S):
        async with trio.open_nursery() as nursery:
            sending = await _send_in_background(
                nursery, conn, request(method, path, headers, b"x" * size)
            )
            response = await conn.response(method.encode())
        # The server took the whole body either way, so a client that writes before it reads
        # (most do) gets the answer rather than a reset.
        assert sending == {"sent": True}
        assert response is not None
        assert response.status == status
        if response.closes:
            # The answer came before the body was in: it says so, and the connection ends.
            assert await conn.closed_by_server()
        else:
            # The body was all in before the answer (read, or dropped): the connection goes on.
            assert await conn.send(request("GET", f"{BASE_PATH}/healthz"))
            following = await conn.response()
            assert following is not None and following.status == 200


async def test_a_small_unread_body_is_dropped_and_the_connection_serves_the_next_request(
    hub: Running,
):
    body = b"x" * (100 * 1024)
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    conn = await Connection.open(hub.rest_url)
    with trio.fail_after(GUARD_S):
        for _ in range(3):
            assert await conn.send(request("POST", f"{BASE_PATH}/groups", headers, body))
            refused = await conn.response(b"POST")
            assert refused is not None and refused.status == 401
            assert not refused.closes
        assert await conn.send(request("GET", f"{BASE_PATH}/healthz"))
        health = await conn.response()
    assert health is not None and health.status == 200


@pytest.mark.parametrize("order", ["CL first", "TE first"])
async def test_content_length_with_transfer_encoding_is_refused_and_nothing_is_smuggled(
    hub: Running, order
):
    smuggled = request("GET", f"{BASE_PATH}/healthz")
    body = chunked(b"") + smuggled
    framing = [("Content-Length", str(len(body))), ("Transfer-Encoding", "chunked")]
    if order == "TE first":
        framing.reverse()
    conn = await Connection.open(hub.rest_url)
    with trio.fail_after(GUARD_S):
        assert await conn.send(request("POST", f"{BASE_PATH}/groups", framing, body))
        response = await conn.response(b"POST")
        assert await conn.closed_by_server(), "the smuggled request must not be answered"
    assert response is not None
    assert response.status == 400
    assert response.closes
    error = json.loads(response.body)["error"]
    assert error["code"] == "invalid"
    assert "Content-Length" in error["message"] and "Transfer-Encoding" in error["message"]


async def test_transfer_encoding_in_http_1_0_is_refused(hub: Running):
    head = (
        f"POST {BASE_PATH}/groups HTTP/1.0\r\nHost: hub.test\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    conn = await Connection.open(hub.rest_url)
    with trio.fail_after(GUARD_S):
        assert await conn.send(head.encode() + chunked(b"{}"))
        response = await conn.response(b"POST")
        assert await conn.closed_by_server()
    assert response is not None and response.status == 400
    assert "HTTP/1.0" in json.loads(response.body)["error"]["message"]


HALF_CLOSE_TRIES = 20  # the answer raced the client's half-close: about half of them lost it


@pytest.mark.parametrize(
    ("what", "method", "path", "body", "authorized", "status"),
    [
        ("liveness", "GET", "/healthz", b"", False, 200),
        ("a read that asks the database", "GET", f"{BASE_PATH}/healthz", b"", False, 200),
        ("an authenticated listing", "GET", f"{BASE_PATH}/groups", b"", True, 200),
        ("a write", "POST", f"{BASE_PATH}/groups", b'{"name": "Smith & Jones"}', True, 201),
        ("a refusal before the body is read", "POST", f"{BASE_PATH}/groups", b"{}", False, 401),
        ("no such route", "GET", "/nowhere", b"", False, 404),
    ],
)
async def test_a_client_that_half_closes_after_its_request_reads_the_whole_answer(
    hub: Running, settings, what, method, path, body, authorized, status
):
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    if authorized:
        member = await new_member(hub.storage, settings)
        headers.append(("Authorization", f"Bearer {member.token}"))
    for _ in range(HALF_CLOSE_TRIES):
        conn = await Connection.open(hub.rest_url)
        try:
            with trio.fail_after(GUARD_S):
                assert await conn.send(request(method, path, headers, body))
                await conn.stream.send_eof()
                response = await conn.response(method.encode())  # Malformed if cut short
                assert response is not None, "closed without an answer"
                assert response.status == status
                assert isinstance(json.loads(response.body), dict)
                assert await conn.closed_by_server()
        finally:
            await conn.aclose()


@pytest.mark.parametrize("then", ["keep the connection", "half-close"])
async def test_pipelined_requests_are_each_answered_whole_and_in_order(
    hub: Running, settings, then
):
    member = await new_member(hub.storage, settings)
    auth = [("Authorization", f"Bearer {member.token}")]
    paths = ["/healthz", f"{BASE_PATH}/groups", "/nowhere", f"{BASE_PATH}/healthz"]
    conn = await Connection.open(hub.rest_url)
    try:
        with trio.fail_after(GUARD_S):
            assert await conn.send(b"".join(request("GET", path, auth) for path in paths))
            if then == "half-close":
                await conn.stream.send_eof()
            answers = []
            for _ in paths:
                response = await conn.response()
                assert response is not None
                answers.append((response.status, sorted(json.loads(response.body))))
            if then == "half-close":
                assert await conn.closed_by_server()
            else:
                assert await conn.send(request("GET", "/healthz"))
                following = await conn.response()
                assert following is not None and following.status == 200
    finally:
        await conn.aclose()
    assert answers == [
        (200, ["status", "uptime_s"]),
        (200, ["items", "next_cursor"]),
        (404, ["error"]),
        (200, ["database", "status", "uptime_s"]),
    ]


@pytest.fixture
async def impatient_hub(database_url, tmp_path) -> AsyncIterator[tuple[Running, Any]]:
    """The whole hub with a two-second idle timeout (and storage timeout below it)."""
    settings = make_settings(
        database_url, tmp_path / "var", HUB_HTTP_IDLE_TIMEOUT_S="2", HUB_STORAGE_TIMEOUT_S="1.5"
    )
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        running = await nursery.start(run_hub, settings, shutdown)
        yield running, settings
        shutdown.set()


@pytest.mark.parametrize("stall", ["inside the head", "inside the body", "idle after an answer"])
async def test_a_connection_that_stops_sending_is_closed_after_the_idle_timeout(
    impatient_hub, stall
):
    hub, settings = impatient_hub
    member = await new_member(hub.storage, settings)
    conn = await Connection.open(hub.rest_url)
    if stall == "inside the head":
        assert await conn.send(b"GET /healthz HTTP/1.1\r\nHost: hub.test\r\n")
    elif stall == "inside the body":
        headers = [
            ("Authorization", f"Bearer {member.token}"),
            ("Content-Type", "application/json"),
            ("Content-Length", "1000"),
        ]
        assert await conn.send(request("POST", f"{BASE_PATH}/groups", headers, b'{"name": '))
    else:
        assert await conn.send(request("GET", f"{BASE_PATH}/healthz"))
        answered = await conn.response()
        assert answered is not None and answered.status == 200
    # The hub's defaults keep connections 30 s; this one must go after about two.
    with trio.fail_after(GUARD_S):
        assert await conn.response() is None
        assert conn.eof
