"""The coalescing HTTP/1.1 protocol writes what Hypercorn's own writes, in fewer writes.

Each test drives the protocol with raw request bytes and records every write it hands to the
transport, for the subclass and for Hypercorn's own class side by side: the bytes on the wire
must be the same, and the response's head must ride with its body."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import h11
import trio
from hypercorn.app_wrappers import ASGIWrapper
from hypercorn.config import Config
from hypercorn.events import Event, RawData
from hypercorn.protocol.h11 import H11Protocol
from hypercorn.trio.task_group import TaskGroup
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import ConnectionState

from hub.http.coalesce import CoalescingH11Protocol

JSON_BODY = b'{"id": 1, "body": "the florist arrives at 14:00"}'

App = Callable[[dict, Callable, Callable], Awaitable[None]]


async def json_app(scope, receive, send) -> None:
    await receive()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(JSON_BODY))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": JSON_BODY, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def streaming_app(scope, receive, send) -> None:
    await receive()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"", "more_body": True})
    await send({"type": "http.response.body", "body": b"first", "more_body": True})
    await trio.sleep(0.01)
    await send({"type": "http.response.body", "body": b"second", "more_body": False})


async def failing_app(scope, receive, send) -> None:
    await receive()
    headers = [(b"content-length", b"10")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    raise RuntimeError("the app failed after starting its response")


async def serve_bytes(protocol_class: type[H11Protocol], app: App, *requests: bytes) -> list[bytes]:
    """Feed `requests` to one connection's protocol; returns every write, in order."""
    writes: list[bytes] = []

    async def send(event: Event) -> None:
        if isinstance(event, RawData):
            writes.append(event.data)

    config = Config()
    config.include_date_header = False  # the two runs must compare byte for byte
    # Leaving the task group waits for every app task to finish. A request that arrives while
    # the one before is still being answered waits in `handle` until that answer is complete
    # (h11 pauses the connection), so the requests are answered one after the other.
    with trio.fail_after(10):
        async with TaskGroup() as task_group:
            protocol = protocol_class(
                ASGIWrapper(app),
                config,
                WorkerContext(None),
                task_group,
                ConnectionState({}),
                False,
                ("127.0.0.1", 50000),
                ("127.0.0.1", 8080),
                send,
            )
            for request in requests:
                await protocol.handle(RawData(data=request))
    return writes


def responses(data: bytes, *methods: bytes) -> list[tuple[int, bytes]]:
    """Parses the bytes a client received: status and body of each response, in order."""
    client = h11.Connection(h11.CLIENT)
    found: list[tuple[int, bytes]] = []
    for method in methods:
        client.send(h11.Request(method=method, target="/", headers=[("Host", "hub")]))
        client.send(h11.EndOfMessage())
        client.receive_data(data)
        status, body = 0, b""
        while True:
            event = client.next_event()
            if isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
            else:
                raise AssertionError(f"incomplete response: {event!r}")
        found.append((status, body))
        data = b""
        client.start_next_cycle()
    return found


GET = b"GET /threads/1 HTTP/1.1\r\nHost: hub\r\n\r\n"
HEAD = b"HEAD /threads/1 HTTP/1.1\r\nHost: hub\r\n\r\n"


async def test_a_json_answer_is_one_write_with_the_bytes_hypercorn_would_send():
    stock = await serve_bytes(H11Protocol, json_app, GET)
    ours = await serve_bytes(CoalescingH11Protocol, json_app, GET)
    assert len(stock) >= 2  # Hypercorn on its own writes the head, then the body
    assert ours == [b"".join(stock)]
    assert responses(ours[0], b"GET") == [(200, JSON_BODY)]


async def test_every_answer_on_a_kept_alive_connection_is_one_write():
    ours = await serve_bytes(CoalescingH11Protocol, json_app, GET, GET, GET)
    assert len(ours) == 3
    assert responses(b"".join(ours), b"GET", b"GET", b"GET") == [(200, JSON_BODY)] * 3


async def test_a_head_answer_sends_its_head_though_no_body_follows():
    stock = await serve_bytes(H11Protocol, json_app, HEAD)
    ours = await serve_bytes(CoalescingH11Protocol, json_app, HEAD)
    assert ours == [b"".join(stock)]
    assert ours[0].startswith(b"HTTP/1.1 200 ") and ours[0].endswith(b"\r\n\r\n")


async def test_a_streamed_answer_sends_its_head_with_the_first_bytes_and_streams_the_rest():
    stock = await serve_bytes(H11Protocol, streaming_app, GET)
    ours = await serve_bytes(CoalescingH11Protocol, streaming_app, GET)
    assert b"".join(ours) == b"".join(stock)
    head_and_first, second = ours[0], ours[1:]
    assert head_and_first.startswith(b"HTTP/1.1 200 ") and b"first" in head_and_first
    assert b"second" in b"".join(second) and b"second" not in head_and_first
    assert responses(b"".join(ours), b"GET") == [(200, b"firstsecond")]


async def test_an_app_failing_after_its_head_still_has_the_head_written():
    stock = await serve_bytes(H11Protocol, failing_app, GET)
    ours = await serve_bytes(CoalescingH11Protocol, failing_app, GET)
    assert b"".join(ours) == b"".join(stock)
    assert ours[0].startswith(b"HTTP/1.1 200 ")


async def test_a_malformed_request_gets_hypercorns_error_answer_in_one_write():
    bad = b"GET /threads/1 HTTP/1.1\r\nHost hub\r\n\r\n"
    stock = await serve_bytes(H11Protocol, json_app, bad)
    ours = await serve_bytes(CoalescingH11Protocol, json_app, bad)
    assert ours == [b"".join(stock)]
    assert ours[0].startswith(b"HTTP/1.1 400 ")
