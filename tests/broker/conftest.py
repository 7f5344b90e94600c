"""Fixtures for the stores nodes share: a redis-server of each test's own, and `backend`, which
builds several nodes' stores over it or over one in-memory state, so a behaviour both keep is
pinned once for each.

Time passes through the backend: the in-memory stores read a fake clock the test moves, Redis
its own clock in real time. Tests wait for what they expect (`eventually`), never for a duration,
and never assert how long anything took.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import coredis
import pytest
import trio
from coredis.retry import NoRetryPolicy

from hub.broker.limits import ClusterLimits, MemoryLimits, MemoryLimitsState, RedisLimits
from hub.broker.presence import (
    ClusterPresence,
    MemoryPresence,
    MemoryPresenceState,
    RedisPresence,
)
from tests.redis_server import RedisServer, free_port  # noqa: F401 (re-exported)

PREFIX = "hub-test"
# A node whose registrations must lapse during a test, and one whose must not.
SHORT_TTL_S = 0.3
LONG_TTL_S = 60.0
# Real time a waiting test gives Redis before it fails instead of hanging.
PATIENCE_S = 30.0


@asynccontextmanager
async def redis_client(url: str) -> AsyncIterator[coredis.Redis[bytes]]:
    """A client as a node holds one: coredis's retries off, so a failure reaches the store."""
    async with coredis.Redis.from_url(
        url, retry_policy=NoRetryPolicy(), connect_timeout=1, stream_timeout=2
    ) as client:
        yield client


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[coredis.Redis[bytes]]:
    async with redis_client(redis_server.url) as client:
        yield client


@dataclass
class FakeClock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Backend:
    """Stores of several nodes over one shared state (in memory) or one Redis, and the time
    they expire by."""

    name: str
    clock: FakeClock = field(default_factory=FakeClock)
    clients: list[coredis.Redis[bytes]] = field(default_factory=list)
    presence_state: MemoryPresenceState = field(default_factory=MemoryPresenceState)
    limits_state: MemoryLimitsState = field(default_factory=MemoryLimitsState)
    _nodes: int = 0

    def _client(self) -> coredis.Redis[bytes]:
        # Each node its own connection where there are two, as separate processes would have.
        self._nodes += 1
        return self.clients[self._nodes % len(self.clients)]

    def presence(self, node_id: str, *, ttl_s: float = LONG_TTL_S) -> ClusterPresence:
        if self.name == "memory":
            return MemoryPresence(
                self.presence_state, node_id=node_id, ttl_s=ttl_s, clock=self.clock
            )
        return RedisPresence(self._client(), prefix=PREFIX, node_id=node_id, ttl_s=ttl_s)

    def limits(self, node_id: str, *, ttl_s: float = LONG_TTL_S) -> ClusterLimits:
        if self.name == "memory":
            return MemoryLimits(self.limits_state, node_id=node_id, ttl_s=ttl_s, clock=self.clock)
        return RedisLimits(self._client(), prefix=PREFIX, node_id=node_id, ttl_s=ttl_s)

    def now(self) -> float:
        """The time the stores expire by, as seen from here (Redis's runs with ours)."""
        return self.clock.now if self.name == "memory" else trio.current_time()

    async def let_pass(self, seconds: float) -> None:
        if self.name == "memory":
            self.clock.now += seconds
            await trio.lowlevel.checkpoint()
        else:
            await trio.sleep(seconds)

    async def eventually(
        self, condition: Callable[[], Awaitable[bool]], *, step_s: float = SHORT_TTL_S / 3
    ) -> None:
        """Let time pass, a step at a time, until `condition` holds."""
        await eventually(condition, step_s=step_s, let_pass=self.let_pass)


async def eventually(
    condition: Callable[[], Awaitable[bool]],
    *,
    step_s: float = SHORT_TTL_S / 3,
    let_pass: Callable[[float], Awaitable[None]] = trio.sleep,
) -> None:
    """Let time pass (real time unless told), a step at a time, until `condition` holds; fail
    after PATIENCE_S of real time rather than hang."""
    with trio.fail_after(PATIENCE_S):
        while not await condition():
            await let_pass(step_s)


@pytest.fixture(params=["memory", "redis"])
def backend_name(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def redis_url(backend_name: str, request: pytest.FixtureRequest) -> str | None:
    """A server of the test's own for the Redis backend; none for the in-memory one."""
    if backend_name != "redis":
        return None
    return request.getfixturevalue("redis_server").url


@pytest.fixture
async def backend(backend_name: str, redis_url: str | None) -> AsyncIterator[Backend]:
    if redis_url is None:
        yield Backend(backend_name)
        return
    async with redis_client(redis_url) as first, redis_client(redis_url) as second:
        yield Backend(backend_name, clients=[first, second])
