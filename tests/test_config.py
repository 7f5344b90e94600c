"""Settings: defaults, overrides, development secrets, and one clear line for each mistake."""

from __future__ import annotations

import base64
import os
import re
import socket
import stat

import pytest

from hub.config import SMTP_SCHEMES, load_settings
from hub.errors import ConfigError
from hub.notifications.email import parse_smtp_url

KEY = base64.b64encode(b"k" * 32).decode()
SECRET = "s" * 40


def test_defaults_are_the_embedded_development_setup(tmp_path):
    settings = load_settings({"HUB_VAR_DIR": str(tmp_path)})

    assert settings.env == "development"
    assert settings.database_url == "sqlite:///var/hub.db"
    assert (settings.http_host, settings.http_port) == ("127.0.0.1", 8080)
    assert (settings.ws_host, settings.ws_port) == ("127.0.0.1", 8081)
    assert settings.http_idle_timeout_s == 30.0
    assert settings.blob_url == str(tmp_path / "blobs")
    assert settings.max_file_size == 100 * 1024 * 1024
    assert settings.attachment_orphan_hours == 24.0
    assert settings.org_storage_quota_bytes == 10 * 1024**3


def test_the_idle_timeout_follows_a_longer_storage_timeout_unless_set(tmp_path):
    base = {"HUB_VAR_DIR": str(tmp_path), "HUB_STORAGE_TIMEOUT_S": "40"}
    assert load_settings(base).http_idle_timeout_s == 45.0
    assert load_settings({**base, "HUB_HTTP_IDLE_TIMEOUT_S": "41"}).http_idle_timeout_s == 41.0


def test_missing_secrets_in_development_are_generated_once_with_private_mode(tmp_path, caplog):
    first = load_settings({"HUB_VAR_DIR": str(tmp_path)})
    second = load_settings({"HUB_VAR_DIR": str(tmp_path)})

    assert first.jwt_secret == second.jwt_secret
    assert first.encryption_key == second.encryption_key and len(first.encryption_key) == 32
    for name in ("jwt_secret", "encryption_key"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o600
    assert "HUB_JWT_SECRET is not set" in caplog.text
    # The warning names the file, never the secret itself.
    assert first.jwt_secret not in caplog.text


@pytest.mark.parametrize("missing", ["HUB_JWT_SECRET", "HUB_ENCRYPTION_KEY"])
def test_production_refuses_to_start_without_a_secret(tmp_path, missing):
    environ = {
        "HUB_ENV": "production",
        "HUB_JWT_SECRET": SECRET,
        "HUB_ENCRYPTION_KEY": KEY,
        "HUB_VAR_DIR": str(tmp_path),
    }
    del environ[missing]

    with pytest.raises(ConfigError, match=f"{missing} is required when HUB_ENV=production"):
        load_settings(environ)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("variable", "value", "complaint"),
    [
        ("HUB_ENCRYPTION_KEY", base64.b64encode(b"short").decode(), "must decode to 32 bytes"),
        ("HUB_ENCRYPTION_KEY", "not base64!", "must be base64"),
        ("HUB_DATABASE_URL", "mysql://db/hub", "must start with sqlite:/// or postgresql://"),
        ("HUB_DATABASE_URL", "postgresql:///nohost", "needs a host"),
        ("HUB_HTTP_PORT", "eighty", "must be a whole number"),
        ("HUB_WS_PORT", "70000", "port number"),
        ("HUB_JWT_SECRET", "short", "at least 32 characters"),
        ("HUB_WS_ORIGINS", "planner.example", "is not an origin"),
        ("HUB_ENV", "staging", "HUB_ENV must be one of"),
        ("HUB_STORAGE_TIMEOUT_S", "-1", "must be positive"),
        ("HUB_HTTP_IDLE_TIMEOUT_S", "0", "must be positive"),
        ("HUB_HTTP_IDLE_TIMEOUT_S", "5", "must exceed HUB_STORAGE_TIMEOUT_S"),
        ("HUB_NODE_ID", "edge 7", "letters, digits"),
        ("HUB_NODE_ID", 'edge"7', "letters, digits"),
        ("HUB_NODE_ID", "-edge-7", "starting with a letter or digit"),
        ("HUB_NODE_ID", "n" * 64, "1 to 63"),
        ("HUB_NODE_ID", "nöde", "letters, digits"),
        ("HUB_METRICS_TOKEN", "short", "at least 16 characters"),
        ("HUB_METRICS_TOKEN", "sixteen chars or more", "without spaces"),
        ("HUB_REDIS_URL", "127.0.0.1:6379", "must look like redis://"),
        ("HUB_REDIS_URL", "http://cache:6379", "must look like redis://"),
        ("HUB_REDIS_PREFIX", "hub prefix", "1 to 64 letters"),
        ("HUB_REDIS_PREFIX", "p" * 65, "1 to 64 letters"),
        ("HUB_PRESENCE_TTL_S", "0", "must be positive"),
        ("HUB_SEQ_CHECK_S", "soon", "HUB_SEQ_CHECK_S"),
        ("HUB_WS_PUBLIC_URL", "https://hub.example/ws", "must look like wss://"),
        ("HUB_WS_PUBLIC_URL", "wss://", "must look like wss://"),
        ("HUB_MAX_FILE_SIZE", "100MB", "must be a whole number"),
        ("HUB_MAX_FILE_SIZE", "0", "must be positive"),
        ("HUB_ATTACHMENT_ORPHAN_HOURS", "-2", "must be positive"),
        ("HUB_ORG_STORAGE_QUOTA_BYTES", "1000", "is below HUB_MAX_FILE_SIZE"),
        ("HUB_RATE_UPLOAD_BURST", "0.5", "at least 1"),
        ("HUB_SMTP_URL", "mail.example:587", "must look like smtp"),
        ("HUB_SMTP_URL", "https://mail.example", "must look like smtp"),
        ("HUB_SMTP_URL", "smtp://mail.example:99999", "port must be 1 to 65535"),
        ("HUB_SMTP_FROM", "notify at hub.example", "must be one email address"),
        ("HUB_SMTP_FROM", "a@hub.example, b@hub.example", "must be one email address"),
        ("HUB_SMTP_FROM", "notify@hub.example\r\nBcc: x@rival.example", "one email address"),
        ("HUB_WEBHOOK_ALLOW_HOSTS", "hooks.internal:http", "a host or host:port"),
        ("HUB_WEBHOOK_ALLOW_HOSTS", "hooks.internal:0", "must be 1 to 65535"),
        ("HUB_WEBHOOK_ALLOW_HOSTS", "*.internal", "a host or host:port"),
        ("HUB_WEBHOOK_ALLOW_HOSTS", "https://hooks.internal", "a host or host:port"),
        ("HUB_WEBHOOK_ALLOW_HOSTS", "[::1", "a host or host:port"),
        ("HUB_WEBHOOK_ALLOW_HOSTS", "[::1]8080", "a host or host:port"),
        ("HUB_PUBLIC_URL", "hub.example", "must look like https://"),
        ("HUB_PUBLIC_URL", "ftp://hub.example", "must look like https://"),
        ("HUB_NOTIFY_LEASE_S", "0", "must be positive"),
        ("HUB_NOTIFY_RETRY_BASE_S", "soon", "HUB_NOTIFY_RETRY_BASE_S"),
        ("HUB_NOTIFY_MAX_ATTEMPTS", "0", "must be positive"),
        ("HUB_AUDIT_RETENTION_DAYS", "0", "must be positive"),
        ("HUB_AUDIT_RETENTION_DAYS", "two years", "whole number"),
        ("HUB_AUDIT_RETENTION_DAYS", "36501", "at most 36500"),
        ("HUB_RETENTION_INTERVAL_S", "-1", "must be positive"),
    ],
)
def test_a_malformed_value_names_its_variable(tmp_path, variable, value, complaint):
    environ = {"HUB_JWT_SECRET": SECRET, "HUB_ENCRYPTION_KEY": KEY, "HUB_VAR_DIR": str(tmp_path)}
    environ[variable] = value

    with pytest.raises(ConfigError, match=complaint) as error:
        load_settings(environ)
    assert variable in str(error.value)


def test_command_line_overrides_beat_the_environment(tmp_path):
    settings = load_settings(
        {"HUB_HTTP_PORT": "9000", "HUB_VAR_DIR": str(tmp_path)},
        overrides={"HUB_HTTP_PORT": "9100", "HUB_WS_PORT": None},
    )

    assert (settings.http_port, settings.ws_port) == (9100, 8081)


def test_a_database_password_never_appears_in_the_error(tmp_path):
    with pytest.raises(ConfigError) as error:
        load_settings(
            {"HUB_DATABASE_URL": "mysql://app:hunter2@db/hub", "HUB_VAR_DIR": str(tmp_path)}
        )
    assert "hunter2" not in str(error.value)


def test_a_redis_password_never_appears_in_the_error(tmp_path):
    with pytest.raises(ConfigError) as error:
        load_settings({"HUB_REDIS_URL": "http://:hunter2@cache/0", "HUB_VAR_DIR": str(tmp_path)})
    assert "hunter2" not in str(error.value) and "HUB_REDIS_URL" in str(error.value)


def test_redis_is_off_unless_its_url_is_set(tmp_path):
    environ = {"HUB_JWT_SECRET": SECRET, "HUB_ENCRYPTION_KEY": KEY, "HUB_VAR_DIR": str(tmp_path)}
    alone = load_settings(environ)
    shared = load_settings({**environ, "HUB_REDIS_URL": "redis://cache:6379/2"})

    assert (alone.redis_url, alone.redis_prefix) == (None, "hub")
    assert (shared.redis_url, shared.redis_prefix) == ("redis://cache:6379/2", "hub")


def test_settings_repr_shows_no_secrets(tmp_path):
    settings = load_settings(
        {"HUB_JWT_SECRET": SECRET, "HUB_ENCRYPTION_KEY": KEY, "HUB_VAR_DIR": str(tmp_path)}
    )

    assert SECRET not in repr(settings) and KEY not in repr(settings)


def test_a_node_id_is_kept_as_given(tmp_path):
    settings = load_settings({"HUB_VAR_DIR": str(tmp_path), "HUB_NODE_ID": "eu-west.hub_2"})

    assert settings.node_id == "eu-west.hub_2"


def test_without_a_node_id_each_process_gets_its_own_from_the_host_name(tmp_path):
    first = load_settings({"HUB_VAR_DIR": str(tmp_path)}).node_id
    second = load_settings({"HUB_VAR_DIR": str(tmp_path)}).node_id

    assert first != second
    host = re.sub(r"[^A-Za-z0-9._-]+", "-", socket.gethostname().split(".")[0]).strip("-._")
    for node_id in (first, second):
        assert re.fullmatch(rf"{re.escape(host[:56] or 'hub')}-[0-9a-f]{{6}}", node_id)
        assert len(node_id) <= 63


def test_a_bad_metrics_token_is_refused_without_showing_it(tmp_path):
    token = "scrape me please"  # 16 characters, with spaces

    with pytest.raises(ConfigError) as error:
        load_settings({"HUB_VAR_DIR": str(tmp_path), "HUB_METRICS_TOKEN": token})
    assert "HUB_METRICS_TOKEN" in str(error.value) and token not in str(error.value)


def test_settings_repr_shows_no_metrics_token(tmp_path):
    token = "m" * 32
    settings = load_settings({"HUB_VAR_DIR": str(tmp_path), "HUB_METRICS_TOKEN": token})

    assert settings.metrics_token == token and token not in repr(settings)


def test_notifications_are_off_unless_configured(tmp_path):
    settings = load_settings({"HUB_VAR_DIR": str(tmp_path)})

    assert (settings.smtp_url, settings.smtp_from) == (None, None)
    assert settings.webhook_allow_hosts == frozenset()


def test_the_email_channel_is_its_server_and_its_sender(tmp_path):
    url = "smtp+starttls://relay:hunter2@mail.example:587"
    settings = load_settings(
        {
            "HUB_VAR_DIR": str(tmp_path),
            "HUB_SMTP_URL": url,
            "HUB_SMTP_FROM": "Vendor Hub <notify@hub.example>",
        }
    )

    assert (settings.smtp_url, settings.smtp_from) == (url, "Vendor Hub <notify@hub.example>")
    assert "hunter2" not in repr(settings)


def test_the_public_url_and_the_dispatchers_settings(tmp_path):
    settings = load_settings(
        {
            "HUB_VAR_DIR": str(tmp_path),
            "HUB_PUBLIC_URL": "https://hub.example/",
            "HUB_NOTIFY_LEASE_S": "30",
            "HUB_NOTIFY_RETRY_BASE_S": "2.5",
            "HUB_NOTIFY_MAX_ATTEMPTS": "4",
        }
    )
    assert settings.public_url == "https://hub.example"  # links add their own path
    assert (settings.notify_lease_s, settings.notify_retry_base_s) == (30.0, 2.5)
    assert settings.notify_max_attempts == 4
    defaults = load_settings({"HUB_VAR_DIR": str(tmp_path)})
    assert (defaults.public_url, defaults.notify_lease_s, defaults.notify_max_attempts) == (
        None,
        120.0,
        10,
    )


def test_the_audit_trail_is_kept_two_years_and_retention_looks_hourly_unless_set(tmp_path):
    defaults = load_settings({"HUB_VAR_DIR": str(tmp_path)})
    assert (defaults.audit_retention_days, defaults.retention_interval_s) == (730, 3600.0)
    settings = load_settings(
        {
            "HUB_VAR_DIR": str(tmp_path),
            "HUB_AUDIT_RETENTION_DAYS": "90",
            "HUB_RETENTION_INTERVAL_S": "600",
        }
    )
    assert (settings.audit_retention_days, settings.retention_interval_s) == (90, 600.0)


def test_an_smtp_server_needs_a_sender(tmp_path):
    with pytest.raises(ConfigError, match="HUB_SMTP_FROM is required when HUB_SMTP_URL is set"):
        load_settings({"HUB_VAR_DIR": str(tmp_path), "HUB_SMTP_URL": "smtp://mail.example"})


def test_a_bad_smtp_url_never_shows_its_password(tmp_path):
    with pytest.raises(ConfigError) as error:
        load_settings({"HUB_VAR_DIR": str(tmp_path), "HUB_SMTP_URL": "smtpx://u:hunter2@mail"})

    assert "HUB_SMTP_URL" in str(error.value) and "hunter2" not in str(error.value)


@pytest.mark.parametrize(
    "url",
    [
        "mail.example:587",
        "https://mail.example",
        "smtp://",
        "smtp://mail.example:99999",
        "smtp://mail.example:0",
        "smtps://[::1",
    ],
)
def test_every_smtp_url_settings_refuse_the_email_channel_refuses_too(tmp_path, url):
    """Settings check HUB_SMTP_URL's shape; the channel's parser holds the whole grammar. They
    must never disagree the other way round: a URL refused at load but usable."""
    environ = {"HUB_VAR_DIR": str(tmp_path), "HUB_SMTP_URL": url, "HUB_SMTP_FROM": "n@hub.example"}

    with pytest.raises(ConfigError, match="HUB_SMTP_URL"):
        load_settings(environ)
    with pytest.raises(ConfigError, match="HUB_SMTP_URL"):
        parse_smtp_url(url)


@pytest.mark.parametrize("scheme", SMTP_SCHEMES)
def test_every_smtp_scheme_settings_accept_is_one_the_email_channel_speaks(scheme):
    assert parse_smtp_url(f"{scheme}://mail.example").host == "mail.example"


def test_webhook_allow_hosts_are_kept_in_the_form_the_guard_compares(tmp_path):
    settings = load_settings(
        {
            "HUB_VAR_DIR": str(tmp_path),
            "HUB_WEBHOOK_ALLOW_HOSTS": " Hooks.Internal:8443, 10.0.0.5,[::1]:9000 ,Bücher.example.,"
            "::FFFF:10.0.0.6",
        }
    )

    assert settings.webhook_allow_hosts == frozenset(
        {"hooks.internal:8443", "10.0.0.5", "[::1]:9000", "xn--bcher-kva.example", "[::ffff:a00:6]"}
    )
