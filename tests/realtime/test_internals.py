"""The trio-websocket internals the transport relies on (hub/ws/internals.py): the startup check
passes on the pinned version, names what is missing when upstream moves it, and stops `hub serve`
with one line. What those attributes do is pinned by behaviour elsewhere: direct writes by every
realtime test, pongs by tests/realtime/test_session_streams.py (a peer that answers pings is
kept), the close workarounds by tests/realtime/test_transport.py."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import trio_websocket
from trio_websocket import WebSocketConnection, WebSocketRequest
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState

from hub.ws import internals

ROOT = Path(__file__).resolve().parents[2]


def test_the_installed_trio_websocket_has_the_shape_the_transport_relies_on():
    internals.check_shape()


def test_trio_websocket_is_pinned_to_the_version_the_internals_were_written_against():
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]

    assert f"trio-websocket=={internals.WRITTEN_AGAINST}" in dependencies
    assert trio_websocket.__version__ == internals.WRITTEN_AGAINST


def test_trio_websockets_own_handlers_still_do_what_the_workarounds_answer():
    # It answers a close only in REMOTE_CLOSING: `_CloseHandling`'s whole reason.
    handler = WebSocketConnection._handle_close_connection_event.__code__
    assert "REMOTE_CLOSING" in handler.co_names
    # Its reader sets the `_pings` entry of each pong: what `Pings` stands in for.
    assert {"_pings", "set"} <= set(WebSocketConnection._handle_pong_event.__code__.co_names)
    # The wrapper passes wsproto's public API through.
    wrapped = internals._CloseHandling(WSConnection(ConnectionType.SERVER))
    assert wrapped.state is ConnectionState.CONNECTING and wrapped.client is False


def _drop_instance_attribute(monkeypatch, cls, name):
    original = cls.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        delattr(self, name)

    monkeypatch.setattr(cls, "__init__", init)


@pytest.mark.parametrize(
    ("cls", "name"),
    [
        (WebSocketRequest, "_connection"),
        (WebSocketConnection, "_stream"),
        (WebSocketConnection, "_stream_lock"),
        (WebSocketConnection, "_wsproto"),
        (WebSocketConnection, "_pings"),
    ],
)
def test_a_missing_attribute_is_named_with_the_installed_version(monkeypatch, cls, name):
    _drop_instance_attribute(monkeypatch, cls, name)

    with pytest.raises(internals.TrioWebSocketChanged) as caught:
        internals.check_shape()

    assert f"trio-websocket {trio_websocket.__version__}: {cls.__name__}.{name} is missing" in str(
        caught.value
    )


def test_a_missing_method_is_named(monkeypatch):
    monkeypatch.delattr(WebSocketConnection, "_abort_web_socket")

    with pytest.raises(internals.TrioWebSocketChanged, match="_abort_web_socket is missing"):
        internals.check_shape()


def test_an_attribute_of_another_type_is_named(monkeypatch):
    original = WebSocketConnection.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self._stream_lock = object()

    monkeypatch.setattr(WebSocketConnection, "__init__", init)

    with pytest.raises(internals.TrioWebSocketChanged, match="_stream_lock is no longer a trio"):
        internals.check_shape()


BREAK_TRIO_WEBSOCKET = """
import sys
import trio_websocket
del trio_websocket.WebSocketConnection._abort_web_socket
from hub.cli import main
sys.exit(main(["serve"]))
"""


def test_hub_serve_stops_with_one_line_when_trio_websocket_changed(tmp_path):
    environ = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    environ.update(
        HUB_VAR_DIR=str(tmp_path / "var"),
        HUB_DATABASE_URL=f"sqlite:///{tmp_path}/hub.db",
        HUB_HTTP_PORT="0",
        HUB_WS_PORT="0",
        HUB_JWT_SECRET="s" * 48,
        HUB_ENCRYPTION_KEY="A" * 43 + "=",
    )
    result = subprocess.run(
        [sys.executable, "-c", BREAK_TRIO_WEBSOCKET],
        cwd=tmp_path,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    last_line = result.stderr.strip().splitlines()[-1]
    expected = f"hub: trio-websocket {trio_websocket.__version__}: "
    assert last_line.startswith(expected + "WebSocketConnection._abort_web_socket is missing")
