"""Fixtures shared by every test: settings for each storage backend, a storage, a running hub.

Tests that take `settings` (or anything built on it) run once on SQLite and once on PostgreSQL.
PostgreSQL tests use HUB_TEST_POSTGRES_DSN and a database of their own, created and dropped here;
without the variable they are skipped with that reason, and with HUB_REQUIRE_POSTGRES=1 (as in
CI) a missing or unreachable server fails them instead.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import os
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import hypothesis
import pytest
import trio
import trio_asyncio

from hub.app import Running, run_hub
from hub.config import Settings, load_settings
from hub.storage import Storage, open_engine, open_storage
from hub.storage.engine import Engine

# The suite shares a 2-core machine with the hubs it starts: a property test's example may take
# longer than hypothesis's 200 ms deadline, and building a strategy's tables the first time (no
# .hypothesis/ directory yet, as in CI's fresh clone) can trip its "too slow" check. Neither is a
# finding about the hub; timing goals live in bench/, not in tests.
hypothesis.settings.register_profile(
    "hub",
    deadline=None,
    suppress_health_check=[hypothesis.HealthCheck.too_slow],
)
hypothesis.settings.load_profile("hub")

# The redis_server fixture: a redis-server of the test's own (tests/redis_server.py).
pytest_plugins = ["tests.redis_server"]

POSTGRES_DSN = os.environ.get("HUB_TEST_POSTGRES_DSN", "").strip()
REQUIRE_POSTGRES = os.environ.get("HUB_REQUIRE_POSTGRES", "") == "1"


def _admin(sql: str) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(POSTGRES_DSN, timeout=10)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    # In a thread of its own: the browser tests' Playwright keeps an asyncio loop marked as
    # running on the main thread, where asyncio.run would refuse to start.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, run()).result()


def _postgres_unavailable(reason: str) -> None:
    if REQUIRE_POSTGRES:
        pytest.fail(f"HUB_REQUIRE_POSTGRES=1 but {reason}")
    pytest.skip(reason)


def database_dsn(name: str) -> str:
    parts = urlsplit(POSTGRES_DSN)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test, dropped afterwards."""
    if not POSTGRES_DSN:
        _postgres_unavailable("HUB_TEST_POSTGRES_DSN is not set")
    name = f"hub_test_{uuid.uuid4().hex[:16]}"
    try:
        _admin(f'CREATE DATABASE "{name}"')
    except (OSError, asyncpg.PostgresError) as exc:
        _postgres_unavailable(f"cannot create a test database at HUB_TEST_POSTGRES_DSN: {exc}")
    try:
        yield database_dsn(name)
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/hub.db"
    return request.getfixturevalue("postgres_url")


def make_settings(database_url: str, var_dir, **overrides: str) -> Settings:
    environ = {
        "HUB_DATABASE_URL": database_url,
        "HUB_JWT_SECRET": "test-secret-" + "x" * 40,
        "HUB_ENCRYPTION_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "HUB_VAR_DIR": str(var_dir),
        "HUB_HTTP_PORT": "0",
        "HUB_WS_PORT": "0",
        "HUB_STORAGE_TIMEOUT_S": "3",
    }
    environ.update(overrides)
    return load_settings(environ)


@pytest.fixture
def settings(database_url: str, tmp_path) -> Settings:
    return make_settings(database_url, tmp_path / "var")


@pytest.fixture
async def asyncio_bridge(settings: Settings) -> AsyncIterator[None]:
    """One trio-asyncio loop per PostgreSQL test, opened before any fixture needs it.

    pytest-trio sets fixtures up concurrently; if each opened its own loop they would race on
    the context variable that names the current loop."""
    if settings.backend != "postgres":
        yield
        return
    async with trio_asyncio.open_loop():
        yield


@pytest.fixture
async def storage(settings: Settings, asyncio_bridge: None) -> AsyncIterator[Storage]:
    async with open_storage(settings) as opened:
        yield opened


@pytest.fixture
async def engine(settings: Settings, asyncio_bridge: None) -> AsyncIterator[Engine]:
    """An engine with connections of its own, beside (not inside) any storage actor."""
    async with open_engine(settings) as opened:
        yield opened


@pytest.fixture
async def hub(settings: Settings, asyncio_bridge: None) -> AsyncIterator[Running]:
    """The whole hub on loopback with ephemeral ports; shut down gracefully after the test."""
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        running = await nursery.start(run_hub, settings, shutdown)
        yield running
        shutdown.set()


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    """The fuzz tests' input counts per door (tests/fuzzcount.py), when any ran."""
    from tests.fuzzcount import tried

    if tried:
        terminalreporter.write_sep("-", "fuzz inputs tried per door")
        for door, n in sorted(tried.items()):
            terminalreporter.write_line(f"{door}: {n}")
