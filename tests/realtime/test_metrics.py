"""`GET /metrics` as an operator's Prometheus sees it: scraped over HTTP from a running hub after
real sockets and REST requests, parsed with prometheus_client's own parser. The counts are what
was done; no series names a tenant; the token, when set, guards the scrape."""

from __future__ import annotations

import http.client
import logging
import re
import uuid
from typing import Any
from urllib.parse import urlsplit

import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from hub import client as hub_client
from hub import protocol
from hub.app import Running
from hub.metrics import CLIENT_FRAME_TYPES, SERVER_FRAME_TYPES, WS_REFUSALS
from tests.http.blocking import call
from tests.realtime.helpers import close_code, raw_socket, receive

THREAD = "/api/vendor-connections/threads/<thread_id>"
TOKEN = "scrape-token-" + "k" * 24
# Every label the hub's own series may carry, and where a value is a closed set, that set.
BOUNDED_LABELS = {
    "type": {*CLIENT_FRAME_TYPES.values(), *SERVER_FRAME_TYPES.values(), "invalid"},
    "door": {"rest", "websocket"},
    "class": {"read", "write", "send", "upload", "export"},
    "action": {"archive", "purge"},
    "reason": set(WS_REFUSALS),
    "method": {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"},
    "route": None,  # templates: checked below
    "status": None,  # HTTP statuses: checked below
    "lane": {"0"},
    "node": None,  # this hub's node id
    "le": None,  # histogram bounds
}


@pytest.fixture
def ws_overrides(request):
    return getattr(request, "param", {})


def _get(url: str, headers: dict[str, str]) -> tuple[int, str, http.client.HTTPMessage]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.request("GET", parts.path, headers=headers)
        response = conn.getresponse()
        return response.status, response.read().decode(), response.headers
    finally:
        conn.close()


async def scrape(hub: Running, authorization: str | None = None) -> tuple[int, str, dict]:
    """GET /metrics at the root of the HTTP port, as a scraper does."""
    url = hub.rest_url.removesuffix("/api/vendor-connections") + "/metrics"
    headers = {} if authorization is None else {"Authorization": authorization}
    return await trio.to_thread.run_sync(_get, url, headers, limiter=trio.CapacityLimiter(1))


def parse(text: str) -> dict[tuple[str, frozenset], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


@pytest.mark.parametrize(
    "ws_overrides",
    [
        {
            "HUB_WS_MESSAGE_RATE": "0.01",
            "HUB_WS_MESSAGE_BURST": "3",
            "HUB_WS_MAX_CONNECTIONS_PER_USER": "1",
            "HUB_RATE_READ_PER_S": "0.01",
            "HUB_RATE_READ_BURST": "3",
        }
    ],
    indirect=True,
)
async def test_a_scrape_counts_what_sockets_and_rest_did_and_names_no_tenant(world, alice, bob):
    hub, thread = world.hub, world.thread
    await alice.join(thread.id)
    await bob.join(thread.id)  # alice is told: one user_joined
    await bob.send_raw("{not json")  # an invalid frame, answered with an error
    assert (await bob.next_event(protocol.Error)).code == "invalid"
    client_msg_ids = [f"cmid-{uuid.uuid4()}" for _ in range(5)]
    acks = [
        await alice.send(thread.id, f"socket note {i}", client_msg_id=client_msg_ids[i])
        for i in range(3)
    ]
    with pytest.raises(hub_client.HubClientError) as refused:
        await alice.send(thread.id, "one too many")
    assert refused.value.code == "rate_limited"
    posted = [
        await call(
            hub,
            "POST",
            f"/threads/{thread.id}",
            world.alice,
            {"body": f"rest note {i}", "client_msg_id": client_msg_ids[3 + i]},
        )
        for i in range(2)
    ]
    assert [status for status, _, _ in posted] == [201, 201]
    for client in (alice, bob):
        assert len(await client.drain(thread.id, 5)) == 5
    # Reads: two pages, a thread that does not exist, then one over the read budget (3).
    reads = [await call(hub, "GET", f"/threads/{thread.id}", world.alice) for _ in range(2)]
    reads.append(await call(hub, "GET", f"/threads/{uuid.uuid4()}", world.alice))
    reads.append(await call(hub, "GET", f"/threads/{thread.id}", world.alice))
    assert [status for status, _, _ in reads] == [200, 200, 404, 429]
    stray = uuid.uuid4()
    for path in (f"/no-such-route/{stray}", f"/threads/{thread.id}/nothing/{stray}"):
        assert (await call(hub, "GET", path, world.alice))[0] == 404
    async with raw_socket(hub.ws_url, world.alice.token) as ws:  # over alice's limit of 1
        assert (await receive(ws)).code == "overloaded"
        assert await close_code(ws) == protocol.CLOSE_TOO_MANY_CONNECTIONS

    status, text, headers = await scrape(hub)

    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = parse(text)
    assert value(samples, "hub_node_info", node=world.settings.node_id) == 1
    assert value(samples, "hub_sockets_open") == 2
    assert value(samples, "hub_sessions_authenticated") == 2
    assert value(samples, "hub_thread_actors") == 1
    assert value(samples, "hub_messages_stored_total") == 5
    assert value(samples, "hub_send_commit_seconds_count") == 5  # 3 sockets + 2 REST
    assert value(samples, "hub_commit_deliver_seconds_count") == 5
    assert value(samples, "hub_storage_batch_size_sum") >= 5
    assert value(samples, "hub_storage_batch_size_count") >= 1
    assert value(samples, "hub_storage_commit_seconds_count") == value(
        samples, "hub_storage_batch_size_count"
    )
    assert value(samples, "hub_storage_inbox_depth", lane="0") == 0
    assert value(samples, "hub_storage_connected", lane="0") == 1
    # Alone: nothing to publish, nothing to repair, never degraded.
    assert value(samples, "hub_broker_connected") == 1
    assert value(samples, "hub_broker_publish_failures_total") == 0
    assert value(samples, "hub_gap_repairs_total") == 0
    assert value(samples, "hub_fallback_polls_total") == 0
    frames_in = {
        kind: value(samples, "hub_frames_in_total", type=kind)
        for kind in ("join_thread", "send_message", "invalid", "auth")
    }
    assert frames_in == {"join_thread": 2, "send_message": 4, "invalid": 1, "auth": 0}
    frames_out = {
        kind: value(samples, "hub_frames_out_total", type=kind)
        for kind in ("ready", "ack", "new_message", "user_joined", "error", "typing")
    }
    assert frames_out == {
        "ready": 2,
        "ack": 5,  # 2 joins, 3 stored sends
        "new_message": 10,  # 5 messages x 2 subscribers
        "user_joined": 1,
        "error": 3,  # rate_limited, invalid, and the 4029 refusal
        "typing": 0,
    }
    assert value(samples, "hub_rate_limited_total", door="websocket", **{"class": "send"}) == 1
    assert value(samples, "hub_rate_limited_total", door="rest", **{"class": "read"}) == 1
    assert value(samples, "hub_ws_refused_total", reason="per_user_limit") == 1
    assert value(samples, "hub_ws_refused_total", reason="max_connections") == 0
    assert value(samples, "hub_slow_consumer_disconnects_total") == 0

    def requests(route: str, method: str, status: int) -> float | None:
        return value(
            samples, "hub_http_requests_total", route=route, method=method, status=str(status)
        )

    assert requests(THREAD, "POST", 201) == 2
    assert requests(THREAD, "GET", 200) == 2
    assert requests(THREAD, "GET", 404) == 1
    assert requests(THREAD, "GET", 429) == 1
    assert requests("<unmatched>", "GET", 404) == 2
    assert value(samples, "hub_http_request_seconds_count", route=THREAD, method="GET") == 4

    # Nothing of a tenant: no id of a thread, group, user, organization or message, no
    # client_msg_id, body or path a client chose. Every label is one the hub defines, with
    # values from closed sets or route templates.
    ids = {thread.id, thread.group_id, stray}
    for member in (world.alice, world.bob):
        ids |= {member.user_id, member.org_id}
    for an_id in ids:
        assert str(an_id) not in text and an_id.hex not in text
    for secret in (*client_msg_ids, "socket note", "rest note", "nothing"):
        assert secret not in text
    message_ids = {str(ack.message.id) for ack in acks} | {str(b["id"]) for _, b, _ in posted}
    for (name, labels), _ in samples.items():
        if not name.startswith("hub_"):
            continue  # process_* from prometheus_client's process collector: no labels
        for label, label_value in labels:
            assert label in BOUNDED_LABELS, (name, label)
            allowed = BOUNDED_LABELS[label]
            assert allowed is None or label_value in allowed, (name, label, label_value)
            assert label == "le" or label_value not in message_ids, (name, label, label_value)
            if label == "route":
                assert label_value == "<unmatched>" or re.fullmatch(r"[/a-z_.<>-]+", label_value)
            if label == "status":
                assert re.fullmatch(r"[1-5][0-9][0-9]", label_value)


async def test_without_a_token_the_scrape_is_public(hub):
    status, text, _ = await scrape(hub)

    assert status == 200
    assert "hub_node_info" in text


@pytest.mark.parametrize("ws_overrides", [{"HUB_METRICS_TOKEN": TOKEN}], indirect=True)
async def test_with_a_token_the_scrape_needs_it(world, caplog):
    caplog.set_level(logging.DEBUG)
    refused = [
        await scrape(world.hub, authorization)
        for authorization in (
            None,
            "Bearer wrong-" + TOKEN[6:],
            f"Bearer {TOKEN}x",
            f"Basic {TOKEN}",
            f"Bearer {world.alice.token}",  # a user's JWT is no scrape token
        )
    ]
    status, text, _ = await scrape(world.hub, f"Bearer {TOKEN}")

    assert [answer[0] for answer in refused] == [401] * 5
    assert all(answer[2]["WWW-Authenticate"] == 'Bearer realm="metrics"' for answer in refused)
    assert all(TOKEN not in answer[1] for answer in refused)
    assert status == 200 and "hub_sockets_open" in text
    # The REST API itself still wants a JWT, not the scrape token.
    assert (await call(world.hub, "GET", "/groups", TOKEN))[0] == 401
    assert TOKEN not in caplog.text


def _families(text: str) -> dict[str, Any]:
    return {family.name: family for family in text_string_to_metric_families(text)}


async def test_every_series_has_help_and_the_hub_prefix(hub):
    _, text, _ = await scrape(hub)

    families = _families(text)
    ours = {name for name in families if name.startswith("hub_")}
    assert {
        "hub_sockets_open",
        "hub_frames_in",
        "hub_frames_out",
        "hub_send_commit_seconds",
        "hub_commit_deliver_seconds",
        "hub_storage_batch_size",
        "hub_storage_commit_seconds",
        "hub_http_requests",
        "hub_http_request_seconds",
        "hub_thread_inbox_depth_max",
        "hub_rate_limited",
        "hub_ws_refused",
        "hub_slow_consumer_disconnects",
    } <= ours
    assert all(families[name].documentation for name in ours)
    assert set(families) - ours <= {name for name in families if name.startswith("process_")}
