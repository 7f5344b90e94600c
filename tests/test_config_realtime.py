"""The realtime layer's settings: defaults sized for production, bad values named at startup."""

from __future__ import annotations

import base64

import pytest

from hub.config import load_settings
from hub.errors import ConfigError


def environ(tmp_path, **extra: str) -> dict[str, str]:
    return {
        "HUB_JWT_SECRET": "s" * 40,
        "HUB_ENCRYPTION_KEY": base64.b64encode(b"k" * 32).decode(),
        "HUB_VAR_DIR": str(tmp_path),
        **extra,
    }


def test_realtime_defaults_allow_ten_thousand_connections_and_a_5s_auth_window(tmp_path):
    settings = load_settings(environ(tmp_path))
    assert settings.ws_max_connections >= 10_000
    assert settings.ws_auth_timeout_s == 5.0
    assert settings.ws_max_frame == 64 * 1024


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("HUB_WS_HEARTBEAT_S", "soon"),
        ("HUB_WS_OUTGOING_QUEUE", "4"),
        ("HUB_WS_MAX_FRAME", "100"),
        ("HUB_WS_MESSAGE_RATE", "-1"),
        ("HUB_WS_MAX_CONNECTIONS_PER_USER", "20000"),
    ],
)
def test_a_bad_realtime_setting_names_its_variable(tmp_path, variable, value):
    with pytest.raises(ConfigError, match=variable):
        load_settings(environ(tmp_path, **{variable: value}))
