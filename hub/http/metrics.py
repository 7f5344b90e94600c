"""`GET /metrics` at the root of the HTTP port, and the count of every REST request.

The scrape is the hub's `hub.metrics.Metrics`, in the Prometheus text format (or OpenMetrics when
the scraper's `Accept` asks for it). It is public unless `HUB_METRICS_TOKEN` is set: its series
carry no tenant data (no thread, user, organization or message id, no path a client chose; see
hub.metrics), only volumes and latencies. With the token set, a scrape needs `Authorization:
Bearer <token>`, compared in constant time; anything else is a 401, and the token appears in no
answer and no log line. The route is left out of the OpenAPI document: it is for operators, not
API clients, and answers text, not JSON.

Every request is counted when its answer is ready, by the matched rule's template
(`request.url_rule.rule`, never the path: `/api/vendor-connections/threads/<thread_id>`, or
`<unmatched>` for a 404 or 405 no rule took), method and status, with its time from the first
`before_request` hook to the last `after_request` hook. `install` must run before any other
hook is registered, so that both ends enclose the others (authentication and rate limits
included: a 401 or 429 is counted and timed too). Requests refused below the app, by
`hub.http.framing` or Hypercorn (ambiguous framing, a transfer coding other than chunked), are
not counted here.
"""

from __future__ import annotations

import hmac

import trio
from quart import Blueprint, Response, current_app, g, request
from quart_schema import hide
from quart_trio import QuartTrio

from hub.http.errors import error_response

blueprint = Blueprint("metrics", __name__)

REALM = 'Bearer realm="metrics"'


def install(app: QuartTrio) -> None:
    """Time and count every request (call first: see the module docstring)."""

    @app.before_request
    async def start_clock() -> None:
        g.request_started = trio.current_time()

    @app.after_request
    async def count_request(response: Response) -> Response:
        rule = request.url_rule
        current_app.extensions["hub"]["metrics"].http_request(
            rule.rule if rule is not None else None,
            request.method,
            response.status_code,
            trio.current_time() - request_started(),
        )
        return response


def request_started() -> float:
    """When the current request reached the app (Trio clock)."""
    started = g.get("request_started")
    return started if started is not None else trio.current_time()


@blueprint.get("/metrics")
@hide
async def scrape() -> Response:
    """The hub's metrics, for Prometheus."""
    hub = current_app.extensions["hub"]
    token: str | None = hub["settings"].metrics_token
    if token is not None and not _bearer_is(token):
        response = error_response(
            401, "unauthorized", "/metrics needs Authorization: Bearer <HUB_METRICS_TOKEN>"
        )
        response.headers["WWW-Authenticate"] = REALM
        return response
    body, content_type = hub["metrics"].exposition(request.headers.get("Accept"))
    return Response(body, content_type=content_type)


def _bearer_is(token: str) -> bool:
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    # compare_digest takes as long whatever the first differing byte; only a length differing
    # from the token's shows, and no more.
    return scheme.lower() == "bearer" and hmac.compare_digest(
        presented.strip().encode(), token.encode()
    )
