"""When `FramingGuard` lets the app hear of a disconnect, at the ASGI interface: after the
answer when the client may only have half-closed, at once when the body it waits for cannot
come. (The wire tests in test_wire.py show what a client sees.)"""

from __future__ import annotations

from typing import Any

import trio

from hub.http.framing import FramingGuard

ANSWER_TIMEOUT_S = 30.0
SCOPE = {"type": "http", "http_version": "1.1", "method": "GET", "headers": []}


class Server:
    """Hypercorn's side of one request: what it hands the app, and what the app sent when."""

    def __init__(self, *messages: dict[str, Any]) -> None:
        self._to_app, self._inbox = trio.open_memory_channel[dict[str, Any]](10)
        for message in messages:
            self._to_app.send_nowait(message)
        self.sent: list[tuple[float, str]] = []

    async def receive(self) -> dict[str, Any]:
        return await self._inbox.receive()

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append((trio.current_time(), message["type"]))


COMPLETE = {"type": "http.request", "body": b"", "more_body": False}
PART = {"type": "http.request", "body": b"{", "more_body": True}
DISCONNECT = {"type": "http.disconnect"}


async def answer_after(delay_s: float, send) -> None:
    await trio.sleep(delay_s)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}", "more_body": False})


async def run(server: Server, app) -> None:
    with trio.fail_after(ANSWER_TIMEOUT_S * 2):
        await FramingGuard(app, answer_timeout_s=ANSWER_TIMEOUT_S)(
            SCOPE, server.receive, server.send
        )


async def test_a_disconnect_after_a_complete_request_reaches_the_app_after_its_answer(
    autojump_clock,
):
    server = Server(COMPLETE, DISCONNECT)
    heard: list[float] = []

    async def app(scope, receive, send) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(answer_after, 5.0, send)
            assert await receive() == COMPLETE
            assert await receive() == DISCONNECT
            heard.append(trio.current_time())

    await run(server, app)
    assert server.sent == [(5.0, "http.response.start"), (5.0, "http.response.body")]
    assert heard == [5.0]


async def test_an_app_that_never_answers_hears_of_the_disconnect_after_the_answer_timeout(
    autojump_clock,
):
    server = Server(COMPLETE, DISCONNECT)

    async def app(scope, receive, send) -> None:
        assert await receive() == COMPLETE
        assert await receive() == DISCONNECT
        assert trio.current_time() == ANSWER_TIMEOUT_S

    await run(server, app)
    assert server.sent == []


async def test_a_disconnect_inside_the_body_reaches_an_app_still_reading_it_at_once(
    autojump_clock,
):
    server = Server(PART, DISCONNECT)

    async def app(scope, receive, send) -> None:
        assert await receive() == PART
        assert await receive() == DISCONNECT
        assert trio.current_time() == 0

    await run(server, app)
