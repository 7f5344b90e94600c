"""Service endpoints, open to anyone: health, and the human-readable API docs page.

Health lives in two places. At the root of the HTTP port, where orchestrators look:
`/healthz` is liveness (the process serves requests; it asks nothing of the database, so a
database outage does not get the hub restarted) and `/readyz` is readiness (the hub should be
sent traffic: not shutting down, every storage writer connected, the database answering within
2 s; otherwise 503 naming the reason). Under the API base, `/api/vendor-connections/healthz` stays
as documented: 200 when the database answers.

The docs page is rendered on the server from the same OpenAPI document `/openapi.json` serves,
so it needs no JavaScript or CDN and cannot disagree with the schema.
"""

from __future__ import annotations

import html
import time
from typing import Any

import trio
from quart import Blueprint, Response, current_app
from quart_schema import security_scheme

from hub.errors import HubError, StorageUnavailable
from hub.http.errors import error_response
from hub.http.openapi import responds
from hub.http.schemas import ErrorBody, Health, Liveness

blueprint = Blueprint("service", __name__)
root = Blueprint("health", __name__)


class Readiness:
    """What readiness needs to know that the storage cannot tell: whether the hub has begun to
    shut down (whoever runs the hub hands it the shutdown event the servers stop on), and the
    broker that crosses nodes, if there is one."""

    def __init__(self, shutdown: trio.Event | None = None, broker: Any = None) -> None:
        self._shutdown = shutdown if shutdown is not None else trio.Event()
        self._broker = broker

    @property
    def shutting_down(self) -> bool:
        return self._shutdown.is_set()

    @property
    def broker(self) -> str:
        return "memory" if self._broker is None else self._broker.name

    @property
    def degraded(self) -> list[str] | None:
        """What works less well than it should while the hub still serves (a 200, not a 503:
        taking every node out of the load balancer because Redis is down would be an outage)."""
        if self._broker is None or self._broker.connected:
            return None
        return [
            "broker: Redis is unreachable; messages still stored and delivered, across nodes by "
            "polling the database; presence, typing and limits are per node until it is back"
        ]


@blueprint.get("/healthz")
@security_scheme([])
@responds(Health)
@responds(ErrorBody, 503)
async def healthz() -> Health:
    """Liveness and readiness: 200 when the database answers within 2 s, else 503."""
    hub = current_app.extensions["hub"]
    storage = hub["storage"]
    uptime = round(time.monotonic() - hub["started_at"], 3)
    try:
        await storage.ping(timeout_s=2.0)
    except HubError:
        raise StorageUnavailable("the database is unreachable") from None
    return Health(status="ok", database=storage.engine.name, uptime_s=uptime)


@root.get("/healthz")
@security_scheme([])
@responds(Liveness)
async def liveness() -> Liveness:
    """Liveness: 200 whenever the process serves requests; the database is not consulted."""
    hub = current_app.extensions["hub"]
    return Liveness(status="ok", uptime_s=round(time.monotonic() - hub["started_at"], 3))


@root.get("/readyz")
@security_scheme([])
@responds(Health)
@responds(ErrorBody, 503)
async def readiness() -> Health | Response:
    """Readiness: 200 when the hub is not shutting down, every storage writer is connected and
    the database answers within 2 s; else 503 with code `not_ready` and the reason. While the
    broker (Redis) is down the hub still serves: 200 with status `degraded` and what is."""
    hub = current_app.extensions["hub"]
    storage = hub["storage"]
    reason = None
    if hub["readiness"].shutting_down:
        reason = "the hub is shutting down"
    elif not storage.stats.connected:
        reason = "the storage writer is not connected to the database"
    else:
        try:
            await storage.ping(timeout_s=2.0)
        except HubError:
            reason = "the database is unreachable"
    if reason is not None:
        return error_response(503, "not_ready", reason)
    uptime = round(time.monotonic() - hub["started_at"], 3)
    readiness = hub["readiness"]
    degraded = readiness.degraded
    return Health(
        status="degraded" if degraded else "ready",
        database=storage.engine.name,
        uptime_s=uptime,
        broker=readiness.broker,
        degraded=degraded,
    )


@blueprint.get("/docs")
@security_scheme([])
async def docs() -> Response:
    """This API's reference, as one HTML page rendered from the OpenAPI document."""
    schema = current_app.extensions["QUART_SCHEMA"].openapi_provider.schema()
    page = render_docs(schema, current_app.extensions["hub"]["base_path"])
    return Response(page, content_type="text/html; charset=utf-8")


def render_docs(schema: dict[str, Any], base_path: str) -> str:
    esc = html.escape
    info = schema["info"]
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{esc(info['title'])} API</title>",
        "<style>body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;"
        "padding:0 1rem}code,pre{background:#f4f4f4;padding:0 .2rem}"
        "h3{margin-bottom:.2rem}.m{font-weight:bold;text-transform:uppercase;width:4rem;"
        "display:inline-block}table{border-collapse:collapse}td,th{border:1px solid #ddd;"
        "padding:.2rem .5rem;text-align:left}</style></head><body>",
        f"<h1>{esc(info['title'])} <small>{esc(info['version'])}</small></h1>",
        f"<p>{esc(info.get('description', ''))}</p>",
        f"<p>Machine-readable: <a href='{esc(base_path)}/openapi.json'>openapi.json</a> "
        "(OpenAPI 3.1).</p>",
    ]
    for path, operations in sorted(schema["paths"].items()):
        for method, operation in operations.items():
            parts.append(
                f"<h3><span class='m'>{esc(method)}</span> <code>{esc(path)}</code></h3>"
                f"<p><b>{esc(operation.get('summary', ''))}</b></p>"
            )
            description = operation.get("description", "").strip()
            if description:
                parts.append(f"<p>{esc(description)}</p>")
            parameters = operation.get("parameters", [])
            if parameters:
                parts.append("<table><tr><th>parameter</th><th>in</th><th>schema</th></tr>")
                for parameter in parameters:
                    parts.append(
                        f"<tr><td><code>{esc(parameter['name'])}</code></td>"
                        f"<td>{esc(parameter['in'])}</td>"
                        f"<td><code>{esc(_describe(parameter.get('schema', {})))}</code></td></tr>"
                    )
                parts.append("</table>")
            body = operation.get("requestBody")
            if body:
                media, content = next(iter(body["content"].items()))
                body_schema = content["schema"]
                parts.append(
                    f"<p>Body ({esc(media)}): <code>{esc(_describe(body_schema))}</code>"
                    f"{' — ' + esc(body['description']) if body.get('description') else ''}</p>"
                )
            statuses = ", ".join(str(status) for status in operation.get("responses", {}))
            parts.append(f"<p>Responses: {esc(statuses)}</p>")
    parts.append("<h2>Schemas</h2>")
    for name, component in sorted(schema["components"]["schemas"].items()):
        properties = component.get("properties", {})
        required = set(component.get("required", []))
        parts.append(f"<h3 id='{esc(name)}'>{esc(name)}</h3>")
        if component.get("description"):
            parts.append(f"<p>{esc(component['description'])}</p>")
        if properties:
            parts.append("<table><tr><th>field</th><th>type</th><th>required</th></tr>")
            for field, field_schema in properties.items():
                parts.append(
                    f"<tr><td><code>{esc(field)}</code></td>"
                    f"<td><code>{esc(_describe(field_schema))}</code></td>"
                    f"<td>{'yes' if field in required else ''}</td></tr>"
                )
            parts.append("</table>")
    parts.append("</body></html>")
    return "".join(parts)


def _describe(schema: dict[str, Any]) -> str:
    """A one-line reading of a JSON schema: its type, format, enum and bounds."""
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return " | ".join(_describe(option) for option in schema[key])
    if "enum" in schema:
        return " | ".join(repr(value) for value in schema["enum"])
    kind = schema.get("type", "any")
    if kind == "array":
        return f"array of {_describe(schema.get('items', {}))}"
    words = [str(kind)]
    if "format" in schema:
        words.append(f"({schema['format']})")
    for key, label in (
        ("minLength", "min length"),
        ("maxLength", "max length"),
        ("minimum", "≥"),
        ("maximum", "≤"),
    ):
        if key in schema:
            words.append(f"{label} {schema[key]}")
    if "default" in schema:
        words.append(f"default {schema['default']!r}")
    return " ".join(words)
