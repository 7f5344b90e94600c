"""Health where orchestrators look: liveness and readiness at the root of the REST port, over
raw TCP against a served app (issue 16, item 11)."""

from __future__ import annotations

import json

import trio

from hub.app import Running
from hub.auth import TokenVerifier
from hub.http.app import BASE_PATH, create_app
from hub.http.server import serve_http
from hub.http.service import Readiness
from tests.http.wire import Connection, request

GUARD_S = 15


async def test_health_and_readiness_are_served_at_the_root_without_a_token(hub: Running):
    conn = await Connection.open(hub.rest_url)
    with trio.fail_after(GUARD_S):
        answers = {}
        for path in ("/healthz", "/readyz", f"{BASE_PATH}/healthz"):
            assert await conn.send(request("GET", path))
            answers[path] = await conn.response()
    assert {path: answer.status for path, answer in answers.items()} == dict.fromkeys(answers, 200)
    assert json.loads(answers["/healthz"].body)["status"] == "ok"
    ready = json.loads(answers["/readyz"].body)
    assert ready["status"] == "ready"
    assert ready["database"] == hub.storage.engine.name


async def _get_over_a_socket(url: str, path: str):
    conn = await Connection.open(url)
    with trio.fail_after(GUARD_S):
        assert await conn.send(request("GET", path))
        return await conn.response()


async def test_readiness_is_503_with_the_reason_while_shutting_down(settings, storage):
    stopping = trio.Event()
    stopping.set()
    app = create_app(settings, storage, TokenVerifier(settings), readiness=Readiness(stopping))
    async with trio.open_nursery() as nursery:
        url = await nursery.start(
            lambda task_status: serve_http(
                app, "127.0.0.1", 0, trio.Event(), idle_timeout_s=30, task_status=task_status
            )
        )
        ready = await _get_over_a_socket(url, "/readyz")
        live = await _get_over_a_socket(url, "/healthz")
        nursery.cancel_scope.cancel()
    assert ready.status == 503
    assert json.loads(ready.body)["error"] == {
        "code": "not_ready",
        "message": "the hub is shutting down",
        "details": [],
    }
    assert live.status == 200, "a hub that is shutting down is still alive"


async def test_readiness_is_503_while_a_storage_writer_is_disconnected(hub: Running):
    lane = hub.storage.lane_stats[0]
    lane.connected = False  # what the storage actor records while it reconnects
    try:
        ready = await _get_over_a_socket(hub.rest_url, "/readyz")
    finally:
        lane.connected = True
    assert ready.status == 503
    error = json.loads(ready.body)["error"]
    assert error["code"] == "not_ready"
    assert error["message"] == "the storage writer is not connected to the database"
    assert (await _get_over_a_socket(hub.rest_url, "/readyz")).status == 200
