"""Settings: the one place that reads the environment.

Everything the hub can be told lives in the frozen `Settings`; `load_settings` builds it from the
environment plus command-line overrides and validates every value, so a bad deployment stops at
startup with one line that names the variable instead of failing later with a traceback.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import logging
import os
import re
import secrets
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import getaddresses
from pathlib import Path
from urllib.parse import urlsplit

from hub.errors import ConfigError

log = logging.getLogger(__name__)

ENVIRONMENTS = ("development", "production")
DEFAULT_DATABASE_URL = "sqlite:///var/hub.db"
# A node id appears in every log line and as a metrics label value: short, and nothing a log
# parser or a Prometheus query would have to escape.
NODE_ID_MAX = 63
_NODE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
METRICS_TOKEN_MIN = 16
_REDIS_PREFIX = re.compile(r"[A-Za-z0-9._:-]{1,64}")
SMTP_SCHEMES = ("smtp", "smtp+starttls", "smtps")
# An address the hub sends from or to: ASCII, a dot-atom local part, a domain with a dot. Stricter
# than RFC 5322 on purpose: quoted local parts and comments are where header parsers disagree.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOMAIN_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_MAIL_ADDRESS = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@{_DOMAIN_LABEL}(?:\.{_DOMAIN_LABEL})+")
# A DNS label as URLs carry it (underscores too, which DNS allows and some internal names use).
_HOST_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")


@dataclass(frozen=True, slots=True)
class Settings:
    env: str
    database_url: str
    http_host: str
    http_port: int
    ws_host: str
    ws_port: int
    jwt_secret: str
    jwt_public_key_file: Path | None
    jwt_audience: str | None
    jwt_issuer: str | None
    encryption_key: bytes
    ws_origins: tuple[str, ...]
    var_dir: Path
    # Where browsers reach the WebSocket port when it is not the HTTP page's host at
    # HUB_WS_PORT (a TLS proxy, another host name): HUB_WS_PUBLIC_URL, ws:// or wss://.
    ws_public_url: str | None = None
    storage_batch_max: int = 1000
    storage_writers: int = 1
    storage_inbox_size: int = 4096
    storage_timeout_s: float = 5.0
    http_idle_timeout_s: float = 30.0
    log_level: str = "INFO"
    # Names this process in logs and metrics (HUB_NODE_ID; generated when unset).
    node_id: str = "hub"
    # Scale-out (docs/scaling.md): several nodes share Redis when HUB_REDIS_URL is set.
    redis_url: str | None = None
    redis_prefix: str = "hub"
    # A dead node's presence and connections stop counting after this (HUB_PRESENCE_TTL_S).
    presence_ttl_s: float = 30.0
    # How often a node checks its live threads' last seq against the database (HUB_SEQ_CHECK_S);
    # a third of it while the broker is down.
    seq_check_s: float = 3.0
    # When set, GET /metrics needs `Authorization: Bearer <this>` (HUB_METRICS_TOKEN).
    metrics_token: str | None = None
    # REST token buckets per user and route class: (tokens per second, burst).
    rate_read: tuple[float, float] = (20.0, 100.0)
    rate_write: tuple[float, float] = (5.0, 30.0)
    rate_send: tuple[float, float] = (10.0, 50.0)
    # Exports of a user's or an organization's data (GET /me/export): each reads everything the
    # subject holds, so a few, then one every ten minutes (HUB_RATE_EXPORT_PER_S / _BURST).
    rate_export: tuple[float, float] = (1 / 600, 3.0)
    # Realtime (WebSocket) layer.
    ws_heartbeat_s: float = 20.0
    ws_heartbeat_timeout_s: float = 10.0
    ws_auth_timeout_s: float = 5.0
    ws_outgoing_queue: int = 256
    ws_max_connections_per_user: int = 20
    ws_max_connections: int = 10_000
    ws_message_rate: float = 10.0
    ws_message_burst: int = 30
    ws_thread_idle_s: float = 30.0
    ws_max_frame: int = 64 * 1024
    ws_access_cache_s: float = 30.0
    ws_close_timeout_s: float = 5.0
    # Attachments (docs/attachments.md). HUB_BLOB_URL: a directory (default var/blobs) or
    # s3://bucket/prefix?endpoint=…; checked when the store opens (hub.attachments.stores).
    blob_url: str = "var/blobs"
    max_file_size: int = 100 * 1024 * 1024
    attachment_orphan_hours: float = 24.0
    org_storage_quota_bytes: int = 10 * 1024**3
    rate_upload: tuple[float, float] = (1.0, 10.0)
    # Notifications. HUB_SMTP_URL (None: no email channel) is parsed in full by
    # hub.notifications.email.parse_smtp_url; HUB_SMTP_FROM is the sender, `Name <addr>` or addr.
    smtp_url: str | None = None
    smtp_from: str | None = None
    # HUB_WEBHOOK_ALLOW_HOSTS: hosts (`host` or `host:port`, canonical_host form) webhooks may
    # reach even on a private address, and over plain http.
    webhook_allow_hosts: frozenset[str] = frozenset()
    # Where people open the web client (HUB_PUBLIC_URL), for the links notification e-mail
    # carries; None: the HTTP listener's own address.
    public_url: str | None = None
    # The dispatcher (hub.actors.dispatcher): how long a claimed delivery is this node's before
    # another may take it, the first retry's delay (doubling, capped at an hour), and the
    # attempts before a delivery is dead.
    notify_lease_s: float = 120.0
    notify_retry_base_s: float = 10.0
    notify_max_attempts: int = 10
    # Retention (docs/privacy.md): audit rows older than this many days are deleted, and the
    # retention actor looks for groups due to be archived or purged this often (Trio's clock).
    audit_retention_days: int = 730
    retention_interval_s: float = 3600.0
    key_check_s: float = 30.0

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def backend(self) -> str:
        return database_backend(self.database_url)

    def __repr__(self) -> str:
        # Settings are logged at startup; the secrets must never be.
        return (
            f"Settings(env={self.env!r}, node={self.node_id!r}, backend={self.backend!r}, "
            f"http={self.http_host}:{self.http_port}, ws={self.ws_host}:{self.ws_port})"
        )


def database_backend(url: str) -> str:
    """'sqlite' or 'postgres' for a database URL, or ConfigError naming what is wrong."""
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        if not url.startswith("sqlite:///") or len(url) <= len("sqlite:///"):
            raise ConfigError(
                f"HUB_DATABASE_URL: a SQLite URL looks like sqlite:///var/hub.db, got {url!r}"
            )
        return "sqlite"
    if scheme in ("postgresql", "postgres"):
        parts = urlsplit(url)
        if not parts.hostname and "host=" not in (parts.query or ""):
            raise ConfigError(f"HUB_DATABASE_URL: a PostgreSQL URL needs a host, got {url!r}")
        return "postgres"
    raise ConfigError(
        f"HUB_DATABASE_URL must start with sqlite:/// or postgresql://, got {redact_url(url)!r}"
    )


def sqlite_path(url: str) -> Path:
    """The file a sqlite:/// URL names; relative paths are relative to the working directory."""
    return Path(url[len("sqlite:///") :])


def load_settings(
    environ: Mapping[str, str] | None = None, overrides: Mapping[str, str | None] | None = None
) -> Settings:
    """Build validated settings; `overrides` are command-line values keyed by variable name."""
    source = dict(os.environ if environ is None else environ)
    for name, value in (overrides or {}).items():
        if value is not None:
            source[name] = str(value)

    env = source.get("HUB_ENV", "development").strip().lower()
    if env not in ENVIRONMENTS:
        raise ConfigError(f"HUB_ENV must be one of {', '.join(ENVIRONMENTS)}, got {env!r}")
    production = env == "production"
    var_dir = Path(source.get("HUB_VAR_DIR", "var"))

    database_url = source.get("HUB_DATABASE_URL", DEFAULT_DATABASE_URL).strip()
    database_backend(database_url)

    jwt_secret = source.get("HUB_JWT_SECRET", "").strip()
    public_key = source.get("HUB_JWT_PUBLIC_KEY", "").strip()
    public_key_file = Path(public_key) if public_key else None
    if public_key_file is not None and not public_key_file.is_file():
        raise ConfigError(f"HUB_JWT_PUBLIC_KEY: no PEM file at {public_key_file}")
    if not jwt_secret and public_key_file is None:
        if production:
            raise ConfigError("HUB_JWT_SECRET is required when HUB_ENV=production")
        jwt_secret = _development_secret(var_dir / "jwt_secret", "HUB_JWT_SECRET", 48)
    elif jwt_secret and len(jwt_secret) < 32:
        raise ConfigError("HUB_JWT_SECRET must be at least 32 characters long")

    encoded_key = source.get("HUB_ENCRYPTION_KEY", "").strip()
    if not encoded_key:
        if production:
            raise ConfigError("HUB_ENCRYPTION_KEY is required when HUB_ENV=production")
        encoded_key = _development_secret(var_dir / "encryption_key", "HUB_ENCRYPTION_KEY", 32)
    encryption_key = parse_encryption_key(encoded_key)

    origins = tuple(
        o.strip().rstrip("/") for o in source.get("HUB_WS_ORIGINS", "").split(",") if o.strip()
    )
    for origin in origins:
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(
                f"HUB_WS_ORIGINS: {origin!r} is not an origin like https://planner.example"
            )

    ws_public_url = source.get("HUB_WS_PUBLIC_URL", "").strip() or None
    if ws_public_url is not None:
        parts = urlsplit(ws_public_url)
        if parts.scheme not in ("ws", "wss") or not parts.netloc:
            raise ConfigError(
                "HUB_WS_PUBLIC_URL must look like wss://hub.example/api/vendor-connections/"
                f"websocket, got {ws_public_url!r}"
            )

    return Settings(
        env=env,
        database_url=database_url,
        http_host=source.get("HUB_HTTP_HOST", "127.0.0.1"),
        http_port=_port(source, "HUB_HTTP_PORT", 8080),
        ws_host=source.get("HUB_WS_HOST", "127.0.0.1"),
        ws_port=_port(source, "HUB_WS_PORT", 8081),
        jwt_secret=jwt_secret,
        jwt_public_key_file=public_key_file,
        jwt_audience=source.get("HUB_JWT_AUDIENCE") or None,
        jwt_issuer=source.get("HUB_JWT_ISSUER") or None,
        encryption_key=encryption_key,
        ws_origins=origins,
        var_dir=var_dir,
        ws_public_url=ws_public_url,
        storage_batch_max=_positive_int(source, "HUB_STORAGE_BATCH_MAX", 1000),
        storage_writers=_positive_int(source, "HUB_STORAGE_WRITERS", 1),
        storage_inbox_size=_positive_int(source, "HUB_STORAGE_INBOX_SIZE", 4096),
        storage_timeout_s=_positive_float(source, "HUB_STORAGE_TIMEOUT_S", 5.0),
        http_idle_timeout_s=_http_idle_timeout(source),
        log_level=_log_level(source),
        node_id=_node_id(source),
        metrics_token=_metrics_token(source),
        **_scale_out(source),
        rate_read=_rate(source, "HUB_RATE_READ", (20.0, 100.0)),
        rate_write=_rate(source, "HUB_RATE_WRITE", (5.0, 30.0)),
        rate_send=_rate(source, "HUB_RATE_SEND", (10.0, 50.0)),
        rate_export=_rate(source, "HUB_RATE_EXPORT", (1 / 600, 3.0)),
        **_realtime(source),
        **_attachments(source, var_dir),
        **_notifications(source),
        **_retention(source),
    )


# The schema's bound on a group's retention (migration 0007): a hundred years.
RETENTION_DAYS_MAX = 36_500


def _retention(source: Mapping[str, str]) -> dict[str, object]:
    """How long the audit trail is kept, and how often the retention actor looks. The audit
    trail outlives the messages it talks about (a group's default retention is 365 days after
    its wedding), so it gets a retention of its own rather than the groups'."""
    audit_days = _positive_int(source, "HUB_AUDIT_RETENTION_DAYS", 730)
    if audit_days > RETENTION_DAYS_MAX:
        raise ConfigError(
            f"HUB_AUDIT_RETENTION_DAYS must be at most {RETENTION_DAYS_MAX} days, got {audit_days}"
        )
    return {
        "audit_retention_days": audit_days,
        "retention_interval_s": _positive_float(source, "HUB_RETENTION_INTERVAL_S", 3600.0),
        "key_check_s": _positive_float(source, "HUB_KEY_CHECK_S", 30.0),
    }


def _notifications(source: Mapping[str, str]) -> dict[str, object]:
    """The email channel's server and sender, and the hosts webhooks may reach that the SSRF
    guard (hub.notifications.addresses) would otherwise refuse."""
    smtp_url = _smtp_url(source)
    smtp_from = source.get("HUB_SMTP_FROM", "").strip() or None
    if smtp_from is not None and parse_mail_address(smtp_from) is None:
        raise ConfigError(
            "HUB_SMTP_FROM must be one email address, like notify@hub.example or "
            f"'Vendor Hub <notify@hub.example>', got {smtp_from!r}"
        )
    if smtp_url is not None and smtp_from is None:
        raise ConfigError("HUB_SMTP_FROM is required when HUB_SMTP_URL is set")
    public_url = source.get("HUB_PUBLIC_URL", "").strip().rstrip("/") or None
    if public_url is not None:
        parts = urlsplit(public_url)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
            raise ConfigError(
                f"HUB_PUBLIC_URL must look like https://hub.example, got {public_url!r}"
            )
    return {
        "smtp_url": smtp_url,
        "smtp_from": smtp_from,
        "webhook_allow_hosts": _webhook_allow_hosts(source),
        "public_url": public_url,
        "notify_lease_s": _positive_float(source, "HUB_NOTIFY_LEASE_S", 120.0),
        "notify_retry_base_s": _positive_float(source, "HUB_NOTIFY_RETRY_BASE_S", 10.0),
        "notify_max_attempts": _positive_int(source, "HUB_NOTIFY_MAX_ATTEMPTS", 10),
    }


def _smtp_url(source: Mapping[str, str]) -> str | None:
    """HUB_SMTP_URL's shape: a scheme, a host and a port. The whole grammar (credentials, the
    CA file) is hub.notifications.email.parse_smtp_url, which config cannot import: that package
    reads Settings, and the layers never import each other both ways (tests/test_layers.py)."""
    url = source.get("HUB_SMTP_URL", "").strip() or None
    if url is None:
        return None
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
    except ValueError:  # an unbalanced [ or ], which redact_url cannot show either
        raise ConfigError("HUB_SMTP_URL is not a URL (an unbalanced [ or ])") from None
    if parts.scheme.lower() not in SMTP_SCHEMES or not hostname:
        raise ConfigError(
            "HUB_SMTP_URL must look like smtp+starttls://user:password@mail.example:587 "
            f"(or smtp://, smtps://), got {redact_url(url)!r}"
        )
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise ConfigError(f"HUB_SMTP_URL: the port must be 1 to 65535, got {redact_url(url)!r}")
    return url


def _webhook_allow_hosts(source: Mapping[str, str]) -> frozenset[str]:
    """HUB_WEBHOOK_ALLOW_HOSTS: comma-separated `host` or `host:port` (IPv6 in brackets), each
    kept in canonical_host form so the guard compares like with like."""
    allowed = set()
    for entry in source.get("HUB_WEBHOOK_ALLOW_HOSTS", "").split(","):
        entry = entry.strip()
        if not entry:
            continue
        try:
            host, port = _host_and_port(entry)
            key = canonical_host(host)
        except ValueError:
            raise ConfigError(
                "HUB_WEBHOOK_ALLOW_HOSTS: each entry is a host or host:port (an IPv6 address "
                f"in brackets: [::1]:8443), got {entry!r}"
            ) from None
        if port is not None:
            if not 0 < int(port) <= 65535:
                raise ConfigError(
                    f"HUB_WEBHOOK_ALLOW_HOSTS: the port of {entry!r} must be 1 to 65535"
                )
            key = f"{key}:{int(port)}"
        allowed.add(key)
    return frozenset(allowed)


def _host_and_port(entry: str) -> tuple[str, str | None]:
    """`host[:port]` split, the port as digits; an IPv6 address takes a port only in brackets."""
    if entry.startswith("["):
        host, bracket, rest = entry.partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(entry)
        host, port = host + bracket, rest[1:] if rest else None
    elif entry.count(":") == 1:
        host, port = entry.split(":")
    else:
        host, port = entry, None  # a name, an IPv4 address, or a bare IPv6 address
    if port is not None and not (port.isascii() and port.isdigit()):
        raise ValueError(entry)
    return host, port


def canonical_host(host: str) -> str:
    """A host as the hub compares it: a name in its lower-case ASCII (IDNA) form without a
    trailing dot, an IPv4 address dotted (the legacy forms `127.1` and `0x7f000001`, which the
    resolver takes as addresses, too), an IPv6 address compressed in brackets. ValueError when it
    is none of these."""
    text = host.strip()
    if "%" in text:
        raise ValueError(f"{host!r}: an address with a zone is not a host")
    if text.startswith("[") and text.endswith("]"):
        return f"[{ipaddress.IPv6Address(text[1:-1]).compressed}]"
    if ":" in text:
        return f"[{ipaddress.IPv6Address(text).compressed}]"
    name = text.removesuffix(".")
    try:
        name = name.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise ValueError(f"{host!r} is not a host name") from None
    if len(name) > 253 or not all(_HOST_LABEL.fullmatch(label) for label in name.split(".")):
        raise ValueError(f"{host!r} is not a host name")
    try:
        return str(ipaddress.IPv4Address(socket.inet_aton(name)))
    except OSError:
        return name


def parse_mail_address(value: str) -> tuple[str, str] | None:
    """(display name, address) of exactly one email address, `addr` or `Name <addr>`; None
    for anything else, a line break above all (it would start a header of its own)."""
    if not value.isprintable():
        return None
    pairs = getaddresses([value])
    if len(pairs) != 1:
        return None
    name, address = pairs[0]
    text = value.strip()
    # getaddresses drops what it cannot parse; only the address alone, or a name before it in
    # angle brackets, is taken as it was written.
    if not _MAIL_ADDRESS.fullmatch(address) or not (
        text == address or text.endswith(f"<{address}>")
    ):
        return None
    return name, address


def _attachments(source: Mapping[str, str], var_dir: Path) -> dict[str, object]:
    """Where attachment contents live, how large one may be, how long an upload may wait to be
    attached, how much each organization may store, and the upload rate (HUB_RATE_UPLOAD_…)."""
    blob_url = source.get("HUB_BLOB_URL", "").strip() or str(var_dir / "blobs")
    max_file_size = _positive_int(source, "HUB_MAX_FILE_SIZE", 100 * 1024 * 1024)
    quota = _positive_int(source, "HUB_ORG_STORAGE_QUOTA_BYTES", 10 * 1024**3)
    if quota < max_file_size:
        raise ConfigError(
            f"HUB_ORG_STORAGE_QUOTA_BYTES ({quota}) is below HUB_MAX_FILE_SIZE ({max_file_size}):"
            " no organization could upload a file of the largest size allowed"
        )
    return {
        "blob_url": blob_url,
        "max_file_size": max_file_size,
        "attachment_orphan_hours": _positive_float(source, "HUB_ATTACHMENT_ORPHAN_HOURS", 24.0),
        "org_storage_quota_bytes": quota,
        "rate_upload": _rate(source, "HUB_RATE_UPLOAD", (1.0, 10.0)),
    }


def _http_idle_timeout(source: Mapping[str, str]) -> float:
    """How long a REST connection may send nothing while the hub waits for its bytes. Hypercorn
    keeps reading while the app works on a complete request, so this also bounds how long an
    answer may take: it must leave room for the slowest, a storage wait. Unset, it is 30 s, or
    5 s more than the storage timeout when that is longer."""
    storage = _positive_float(source, "HUB_STORAGE_TIMEOUT_S", 5.0)
    idle = _positive_float(source, "HUB_HTTP_IDLE_TIMEOUT_S", max(30.0, storage + 5.0))
    if idle <= storage:
        raise ConfigError(
            f"HUB_HTTP_IDLE_TIMEOUT_S ({idle:g}) must exceed HUB_STORAGE_TIMEOUT_S ({storage:g}):"
            " connections would be dropped while they wait for an answer"
        )
    return idle


def _realtime(source: Mapping[str, str]) -> dict[str, float | int]:
    """The WebSocket layer's knobs, each one `HUB_WS_…`."""
    values: dict[str, float | int] = {
        "ws_heartbeat_s": _positive_float(source, "HUB_WS_HEARTBEAT_S", 20.0),
        "ws_heartbeat_timeout_s": _positive_float(source, "HUB_WS_HEARTBEAT_TIMEOUT_S", 10.0),
        "ws_auth_timeout_s": _positive_float(source, "HUB_WS_AUTH_TIMEOUT_S", 5.0),
        "ws_outgoing_queue": _positive_int(source, "HUB_WS_OUTGOING_QUEUE", 256),
        "ws_max_connections_per_user": _positive_int(source, "HUB_WS_MAX_CONNECTIONS_PER_USER", 20),
        "ws_max_connections": _positive_int(source, "HUB_WS_MAX_CONNECTIONS", 10_000),
        "ws_message_rate": _positive_float(source, "HUB_WS_MESSAGE_RATE", 10.0),
        "ws_message_burst": _positive_int(source, "HUB_WS_MESSAGE_BURST", 30),
        "ws_thread_idle_s": _positive_float(source, "HUB_WS_THREAD_IDLE_S", 30.0),
        "ws_max_frame": _positive_int(source, "HUB_WS_MAX_FRAME", 64 * 1024),
        "ws_access_cache_s": _positive_float(source, "HUB_WS_ACCESS_CACHE_S", 30.0),
        "ws_close_timeout_s": _positive_float(source, "HUB_WS_CLOSE_TIMEOUT_S", 5.0),
    }
    if values["ws_outgoing_queue"] < 16:
        raise ConfigError("HUB_WS_OUTGOING_QUEUE must be at least 16 frames")
    if values["ws_max_frame"] < 1024:
        raise ConfigError("HUB_WS_MAX_FRAME must be at least 1024 bytes")
    if values["ws_max_connections_per_user"] > values["ws_max_connections"]:
        raise ConfigError("HUB_WS_MAX_CONNECTIONS_PER_USER cannot exceed HUB_WS_MAX_CONNECTIONS")
    return values


def _scale_out(source: Mapping[str, str]) -> dict[str, str | float | None]:
    """HUB_REDIS_URL (unset: one process, in-memory broker), HUB_REDIS_PREFIX, the presence TTL
    and the seq check's period."""
    url = source.get("HUB_REDIS_URL", "").strip() or None
    if url is not None:
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss", "unix") or not (parts.netloc or parts.path):
            raise ConfigError(
                f"HUB_REDIS_URL must look like redis://host:6379/0, got {redact_url(url)!r}"
            )
    prefix = source.get("HUB_REDIS_PREFIX", "hub").strip()
    if not _REDIS_PREFIX.fullmatch(prefix):
        raise ConfigError(
            "HUB_REDIS_PREFIX must be 1 to 64 letters, digits, '.', '_', '-' or ':', "
            f"got {prefix!r}"
        )
    ttl = _positive_float(source, "HUB_PRESENCE_TTL_S", 30.0)
    check = _positive_float(source, "HUB_SEQ_CHECK_S", 3.0)
    return {"redis_url": url, "redis_prefix": prefix, "presence_ttl_s": ttl, "seq_check_s": check}


def _node_id(source: Mapping[str, str]) -> str:
    raw = source.get("HUB_NODE_ID", "").strip()
    if not raw:
        return generated_node_id()
    if len(raw) > NODE_ID_MAX or not _NODE_ID.fullmatch(raw):
        shown = raw if len(raw) <= NODE_ID_MAX else raw[:NODE_ID_MAX] + "…"
        raise ConfigError(
            f"HUB_NODE_ID must be 1 to {NODE_ID_MAX} letters, digits, '.', '_' or '-', starting "
            f"with a letter or digit, got {shown!r}"
        )
    return raw


def generated_node_id() -> str:
    """The host's name (made safe and short) and 6 random hex digits: unique per process, so
    two processes on one host, or one restarted, are never taken for the same node."""
    host = re.sub(r"[^A-Za-z0-9._-]+", "-", socket.gethostname().split(".")[0]).strip("-._")
    return f"{host[: NODE_ID_MAX - 7] or 'hub'}-{secrets.token_hex(3)}"


def _metrics_token(source: Mapping[str, str]) -> str | None:
    """The bearer token /metrics asks for, or None (public). Its value is never shown, here or
    in any log line."""
    raw = source.get("HUB_METRICS_TOKEN")
    if raw is None or raw.strip() == "":
        return None
    token = raw.strip()
    if len(token) < METRICS_TOKEN_MIN:
        raise ConfigError(f"HUB_METRICS_TOKEN must be at least {METRICS_TOKEN_MIN} characters")
    if any(c.isspace() or not c.isprintable() or not c.isascii() for c in token):
        raise ConfigError(
            "HUB_METRICS_TOKEN must be printable ASCII without spaces (it is sent in an "
            "Authorization header)"
        )
    return token


def parse_encryption_key(encoded: str) -> bytes:
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError("HUB_ENCRYPTION_KEY must be base64 (32 random bytes)") from None
    if len(key) != 32:
        raise ConfigError(f"HUB_ENCRYPTION_KEY must decode to 32 bytes, got {len(key)}")
    return key


def _development_secret(path: Path, variable: str, size: int) -> str:
    """Read, or create once with mode 0600, a secret so a fresh clone runs without setup."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = base64.b64encode(secrets.token_bytes(size)).decode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    log.warning(
        "%s is not set: generated a development value in %s. "
        "Set it explicitly (and HUB_ENV=production) before real use.",
        variable,
        path,
    )
    return value


def _port(source: Mapping[str, str], name: str, default: int) -> int:
    value = _positive_int(source, name, default, allow_zero=True)
    if value > 65535:
        raise ConfigError(f"{name} must be a port number from 0 to 65535, got {value}")
    return value


def _positive_int(
    source: Mapping[str, str], name: str, default: int, *, allow_zero: bool = False
) -> int:
    raw = source.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{name} must be positive, got {value}")
    return value


def _positive_float(source: Mapping[str, str], name: str, default: float) -> float:
    raw = source.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw.strip())
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if not value > 0:
        raise ConfigError(f"{name} must be positive, got {value}")
    return value


def _rate(
    source: Mapping[str, str], prefix: str, default: tuple[float, float]
) -> tuple[float, float]:
    """A token bucket from `<prefix>_PER_S` and `<prefix>_BURST`; a burst below one request
    would refuse everything, so it is refused here instead."""
    rate = _positive_float(source, f"{prefix}_PER_S", default[0])
    burst = _positive_float(source, f"{prefix}_BURST", default[1])
    if burst < 1:
        raise ConfigError(f"{prefix}_BURST must be at least 1, got {burst}")
    return rate, burst


def _log_level(source: Mapping[str, str]) -> str:
    level = source.get("HUB_LOG_LEVEL", "INFO").strip().upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError(f"HUB_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got {level!r}")
    return level


def redact_url(url: str) -> str:
    """The URL with its password (if any) replaced by ***, for logs and errors."""
    parts = urlsplit(url)
    if parts.password:
        return url.replace(parts.password, "***")
    return url
