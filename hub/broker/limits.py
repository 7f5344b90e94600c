"""Per-user limits that hold over every node: live sessions, and the message-send token bucket.

A user who opens sockets on three nodes, or sends through all of them, meets one limit, not one
per node. Sessions are counted per user with an expiry, by the store's clock (Redis `TIME`), that
live nodes refresh, so the sessions of a node that died without releasing them stop counting
after `ttl_s`. The bucket is one per user, refilled by the store's clock too, so nodes whose
clocks disagree still share one budget.

Its contract: `admit_connection` counts the session and says True, or says False and counts
nothing when the user already has `limit` live sessions over all nodes (admitting a session
already counted just refreshes it); `release_connection` is idempotent; `take_message` answers
as hub.ratelimit.RateLimiter.take does, with the same Decision fields. Every Redis failure, or no
answer within `timeout_s`, raises BrokerUnavailable: callers then fall back to this node's own
limits.

Redis keys, under the prefix: `{prefix}:conns:{user}`, a sorted set of `{node}|{session}` scored
by expiry (ms), expiring a while after its last write; `{prefix}:send-bucket:{user}`, a hash of
`tokens` and `updated` (ms), expiring once the bucket would be full again, when forgetting it
changes nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any, Protocol, cast
from uuid import UUID

import trio
from coredis.commands import Script

from hub.broker.redisstore import ClientSource, RedisStore, redis_answers
from hub.ratelimit import Budget, Decision, RateLimiter

# Users per script call in `refresh_connections` (one call runs alone in Redis).
REFRESH_BATCH = 512


class ClusterLimits(Protocol):
    """Per-user limits over all live nodes (see the module's contract)."""

    async def admit_connection(self, user_id: UUID, session_id: str, limit: int) -> bool:
        """Count a new session of the user on this node; False (and nothing counted) if the
        user already has `limit` live sessions over all live nodes."""
        ...

    async def release_connection(self, user_id: UUID, session_id: str) -> None:
        """Stop counting the session (nothing happens if it is not counted)."""
        ...

    async def refresh_connections(self, sessions: Iterable[tuple[UUID, str]]) -> None:
        """Extend the TTL of these (user, session) of this node, counting again any the store
        lost (a restarted Redis): a dead node's sessions stop counting after the TTL."""
        ...

    async def take_message(self, user_id: UUID, budget: Budget) -> Decision:
        """One token of the user's message budget (`budget.rate` tokens/s up to
        `budget.burst`), shared by all nodes; the Decision of hub.ratelimit.RateLimiter.take."""
        ...


def _decision(budget: Budget, allowed: bool, tokens: float) -> Decision:
    """The Decision RateLimiter.take gives for a bucket left with `tokens` (cost 1)."""
    rate = budget.rate
    return Decision(
        allowed=allowed,
        limit=int(budget.burst),
        remaining=int(tokens),
        reset_s=(budget.burst - tokens) / rate if rate else 0.0,
        retry_after_s=0.0 if allowed else ((1.0 - tokens) / rate if rate else math.inf),
    )


# --- in memory: one process, any number of in-process nodes ----------------------------------


class MemoryLimitsState:
    """What the in-process nodes of one test cluster (or the one node of a hub without Redis)
    share: each user's counted sessions with their expiries, and the users' buckets."""

    def __init__(self) -> None:
        # user -> (node, session) -> expiry (the nodes' shared clock)
        self.sessions: dict[UUID, dict[tuple[str, str], float]] = {}
        self._limiters: dict[Budget, RateLimiter] = {}

    def limiter(self, budget: Budget, clock: Callable[[], float]) -> RateLimiter:
        """The buckets for `budget` (nodes in one process share one clock, so the first asks
        with the clock all of them use)."""
        limiter = self._limiters.get(budget)
        if limiter is None:
            limiter = self._limiters[budget] = RateLimiter(budget, clock=clock)
        return limiter


class MemoryLimits:
    """ClusterLimits for nodes in one process, over a MemoryLimitsState they share. Every
    method is one checkpoint and then runs without yielding, so each is atomic, as a script is."""

    def __init__(
        self,
        state: MemoryLimitsState,
        *,
        node_id: str,
        ttl_s: float,
        clock: Callable[[], float] = trio.current_time,
    ) -> None:
        self.node_id = node_id
        self.ttl_s = ttl_s
        self._state = state
        self._clock = clock

    async def admit_connection(self, user_id: UUID, session_id: str, limit: int) -> bool:
        await trio.lowlevel.checkpoint()
        now = self._clock()
        sessions = {
            key: expiry
            for key, expiry in self._state.sessions.get(user_id, {}).items()
            if expiry > now
        }
        key = (self.node_id, session_id)
        if key not in sessions and len(sessions) >= limit:
            return False
        sessions[key] = now + self.ttl_s
        self._state.sessions[user_id] = sessions
        return True

    async def release_connection(self, user_id: UUID, session_id: str) -> None:
        await trio.lowlevel.checkpoint()
        sessions = self._state.sessions.get(user_id, {})
        sessions.pop((self.node_id, session_id), None)
        if not sessions:
            self._state.sessions.pop(user_id, None)

    async def refresh_connections(self, sessions: Iterable[tuple[UUID, str]]) -> None:
        await trio.lowlevel.checkpoint()
        expiry = self._clock() + self.ttl_s
        for user_id, session_id in sessions:
            self._state.sessions.setdefault(user_id, {})[(self.node_id, session_id)] = expiry

    async def take_message(self, user_id: UUID, budget: Budget) -> Decision:
        await trio.lowlevel.checkpoint()
        return self._state.limiter(budget, self._clock).take(user_id)


# --- Redis: every node of the hub ------------------------------------------------------------

_LUA_COMMON = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function keep(key, ms)
  if redis.call('PTTL', key) < ms then redis.call('PEXPIRE', key, ms) end
end
"""

# KEYS: conns. ARGV: member, limit, ttl ms, key ttl ms. 1 if admitted.
_ADMIT = (
    _LUA_COMMON
    + """
local now = now_ms()
local member, limit = ARGV[1], tonumber(ARGV[2])
local ttl, key_ttl = tonumber(ARGV[3]), tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], member) and redis.call('ZCARD', KEYS[1]) >= limit then
  return 0
end
redis.call('ZADD', KEYS[1], now + ttl, member)
keep(KEYS[1], key_ttl)
return 1
"""
)

# KEYS: conns per user. ARGV: ttl ms, key ttl ms, then per user the number of members and them.
_REFRESH = (
    _LUA_COMMON
    + """
local now = now_ms()
local ttl, key_ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
local at = 3
for _, key in ipairs(KEYS) do
  local count = tonumber(ARGV[at])
  for i = at + 1, at + count do redis.call('ZADD', key, now + ttl, ARGV[i]) end
  at = at + count + 1
  keep(key, key_ttl)
end
return 0
"""
)

# KEYS: bucket. ARGV: rate (tokens/s), burst. {1 if allowed, tokens left as a string}.
_TAKE = (
    _LUA_COMMON
    + """
local now = now_ms()
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'updated')
local tokens, updated = tonumber(state[1]), tonumber(state[2])
if tokens == nil or updated == nil then
  tokens = burst
else
  tokens = math.min(burst, tokens + math.max(0, now - updated) * rate / 1000)
end
local allowed = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
end
local text = string.format('%.17g', tokens)
redis.call('HSET', KEYS[1], 'tokens', text, 'updated', now)
local full_in = 86400000
if rate > 0 then full_in = math.ceil((burst - tokens) / rate * 1000) end
redis.call('PEXPIRE', KEYS[1], full_in + 1000)
return {allowed, text}
"""
)


class RedisLimits(RedisStore):
    """ClusterLimits over Redis, shared by every node on it (see the module's contract and key
    layout). Scripts go by SHA through coredis's Script, reloaded when Redis answers NOSCRIPT;
    `client` is a client or what names the current one, as for RedisPresence."""

    def __init__(self, client: ClientSource, **options: Any) -> None:
        super().__init__(client, **options)
        self._admit = Script[bytes](script=_ADMIT)
        self._refresh = Script[bytes](script=_REFRESH)
        self._take = Script[bytes](script=_TAKE)

    def _conns(self, user_id: UUID) -> str:
        return f"{self._prefix}:conns:{user_id}"

    def _member(self, session_id: str) -> str:
        return f"{self.node_id}|{session_id}"

    async def admit_connection(self, user_id: UUID, session_id: str, limit: int) -> bool:
        args = [self._member(session_id), limit, self._ttl_ms, self._key_ttl_ms]
        with redis_answers("a connection count", self.timeout_s):
            admitted = await self._admit([self._conns(user_id)], args, client=self._current())
        return admitted == 1

    async def release_connection(self, user_id: UUID, session_id: str) -> None:
        with redis_answers("a connection release", self.timeout_s):
            await self._current().zrem(self._conns(user_id), [self._member(session_id)])

    async def refresh_connections(self, sessions: Iterable[tuple[UUID, str]]) -> None:
        by_user: dict[UUID, list[str]] = {}
        for user_id, session_id in sessions:
            by_user.setdefault(user_id, []).append(self._member(session_id))
        users = list(by_user)
        for start in range(0, len(users), REFRESH_BATCH):
            batch = users[start : start + REFRESH_BATCH]
            args: list[str | int] = [self._ttl_ms, self._key_ttl_ms]
            for user_id in batch:
                args += [len(by_user[user_id]), *by_user[user_id]]
            with redis_answers("a connection refresh", self.timeout_s):
                await self._refresh(
                    [self._conns(user_id) for user_id in batch], args, client=self._current()
                )

    async def take_message(self, user_id: UUID, budget: Budget) -> Decision:
        key = f"{self._prefix}:send-bucket:{user_id}"
        with redis_answers("a message token", self.timeout_s):
            answer = cast(
                list[int | bytes],
                await self._take([key], [budget.rate, budget.burst], client=self._current()),
            )
        allowed, tokens = answer
        return _decision(budget, allowed == 1, float(tokens))
