"""The web client: the page at `/`, its assets under `/app/`, and the one setting it needs.

The assets are the files of the `hub.web` package, read once when the app is made and served
from memory with an ETag, so the client needs no build step, no CDN and no file path from a
request (only names the package holds are served). Every answer carries a Content-Security-Policy
that allows scripts and styles from this origin alone (no `unsafe-inline`) and connections to
this origin and the WebSocket port. The page carries no token: the browser keeps it
(`sessionStorage`) after taking it from the URL fragment, which never reaches the server.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from importlib import resources
from urllib.parse import urlsplit

from quart import Blueprint, Response, current_app, request

from hub.errors import NotFound, Overloaded

blueprint = Blueprint("webclient", __name__)

PUBLIC_ENDPOINTS = {"webclient.index", "webclient.asset", "webclient.config"}

_HOST = re.compile(r"[A-Za-z0-9.-]{1,253}|[0-9A-Fa-f:.]{2,45}")
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    content_type: str
    etag: str


def load_assets() -> dict[str, Asset]:
    """Every file of `hub.web` by its path inside the package (`app.js`, `views/thread.js`)."""
    assets: dict[str, Asset] = {}

    def walk(folder: resources.abc.Traversable, prefix: str) -> None:
        for entry in folder.iterdir():
            name = prefix + entry.name
            if entry.is_dir():
                if entry.name != "__pycache__":
                    walk(entry, name + "/")
                continue
            suffix = "." + entry.name.rpartition(".")[2]
            if suffix not in _TYPES:
                continue  # __init__.py and the like are not assets
            body = entry.read_bytes()
            etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
            assets[name] = Asset(body, _TYPES[suffix], etag)

    walk(resources.files("hub.web"), "")
    return assets


def _ws_url() -> str:
    """Where this page's browser reaches the WebSocket server: HUB_WS_PUBLIC_URL when set,
    otherwise the host name the browser used for this page, at the WebSocket port."""
    hub = current_app.extensions["hub"]
    public = hub["settings"].ws_public_url
    if public:
        return public
    listening = hub.get("ws_url")
    if not listening:
        raise Overloaded("the hub is starting: its WebSocket server is not listening yet; retry")
    parts = urlsplit(listening)
    try:
        host = urlsplit("//" + request.host).hostname or parts.hostname
    except ValueError:  # a Host header that is no host: the address the server listens on
        host = parts.hostname
    if not host or not _HOST.fullmatch(host):
        host = parts.hostname  # never echo a Host header that is not a plain host name
    if host and ":" in host:
        host = f"[{host}]"  # IPv6
    scheme = "wss" if request.scheme == "https" else "ws"
    return f"{scheme}://{host}:{parts.port}{parts.path}"


def _policy(ws_url: str) -> str:
    parts = urlsplit(ws_url)
    ws_origin = f"{parts.scheme}://{parts.netloc}"
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            # Previews of attachments are fetched with the token and shown from blob: URLs.
            "img-src 'self' data: blob:",
            f"connect-src 'self' {ws_origin}",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )


def _harden(response: Response, ws_url: str) -> Response:
    response.headers["Content-Security-Policy"] = _policy(ws_url)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Frame-Options"] = "DENY"
    return response


def _serve(name: str) -> Response:
    asset = current_app.extensions["hub"]["web_assets"].get(name)
    if asset is None:
        raise NotFound(f"no such file: /app/{name}")
    if request.headers.get("If-None-Match") == asset.etag:
        response = Response(b"", status=304)
    else:
        response = Response(asset.body, content_type=asset.content_type)
    response.headers["ETag"] = asset.etag
    # Revalidated on every load: a new hub version is picked up at once, an unchanged one
    # costs a 304.
    response.headers["Cache-Control"] = "no-cache"
    return _harden(response, _ws_url())


@blueprint.get("/")
async def index() -> Response:
    """The web client's page (no token in it: the browser brings its own)."""
    return _serve("index.html")


@blueprint.get("/app/<path:name>")
async def asset(name: str) -> Response:
    """A file of the web client (scripts, styles, icons)."""
    return _serve(name)


@blueprint.get("/app/config.json")
async def config() -> Response:
    """What the page needs to know to connect: the API base and the WebSocket URL."""
    ws_url = _ws_url()
    hub = current_app.extensions["hub"]
    response = Response(
        json.dumps({"api_base": hub["base_path"], "ws_url": ws_url}),
        content_type="application/json",
    )
    response.headers["Cache-Control"] = "no-store"
    return _harden(response, ws_url)
