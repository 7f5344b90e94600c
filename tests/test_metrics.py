"""hub.metrics on its own: each hub's registry is its own, and labels stay within closed sets
whatever a client sends (the end-to-end scrape is tests/realtime/test_metrics.py)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from hub import protocol
from hub.metrics import LaneReading, Metrics, Readings


def samples(metrics: Metrics) -> dict[tuple[str, frozenset], float]:
    body, _ = metrics.exposition(None)
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def test_two_hubs_in_one_process_count_apart():
    first, second = Metrics("node-a"), Metrics("node-b")

    first.frames_out[protocol.NewMessage].inc(9)
    first.messages_stored.inc()

    seen = samples(second)
    assert seen[("hub_frames_out_total", frozenset({("type", "new_message")}))] == 0
    assert seen[("hub_messages_stored_total", frozenset())] == 0
    assert ("hub_node_info", frozenset({("node", "node-b")})) in seen
    assert samples(first)[("hub_frames_out_total", frozenset({("type", "new_message")}))] == 9


def test_a_request_no_route_matched_and_an_odd_method_get_closed_labels():
    metrics = Metrics()

    metrics.http_request(None, "BREW", 404, 0.001)
    metrics.http_request("/threads/<thread_id>", "GET", 200, 0.002)

    seen = samples(metrics)
    unmatched = {("route", "<unmatched>"), ("method", "other"), ("status", "404")}
    assert seen[("hub_http_requests_total", frozenset(unmatched))] == 1
    assert not any(("method", "BREW") in labels for _, labels in seen)


def test_readings_are_taken_at_each_scrape():
    metrics = Metrics()
    now = {"sockets": 3}
    metrics.read_at_scrape(
        lambda: Readings(
            sockets_open=now["sockets"],
            lanes=[LaneReading(inbox_depth=7, connected=True, batches_failed=0, reconnects=1)],
        )
    )

    before = samples(metrics)
    now["sockets"] = 5
    after = samples(metrics)

    assert before[("hub_sockets_open", frozenset())] == 3
    assert after[("hub_sockets_open", frozenset())] == 5
    assert after[("hub_storage_inbox_depth", frozenset({("lane", "0")}))] == 7
    assert after[("hub_storage_reconnects_total", frozenset({("lane", "0")}))] == 1


def test_a_scraper_asking_for_openmetrics_gets_it():
    body, content_type = Metrics().exposition("application/openmetrics-text; version=1.0.0")

    assert content_type.startswith("application/openmetrics-text")
    assert body.endswith(b"# EOF\n")
