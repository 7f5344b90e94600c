"""Presence across nodes: which users are in which thread on some live node, with their entries.

Each node registers the (thread, user) pairs of its own sessions. A registration expires `ttl_s`
after it was made or last refreshed, by the store's clock (Redis `TIME`, never a node's), so a
node that dies without leaving (kill -9, a partition) stops counting once its registrations
expire; a live node refreshes its own well within the TTL. The entry (the encoded presence
entry: name, organization, status) is stored once per (thread, user), whichever node wrote it last.

Its contract: `join` says whether the user became present in the thread anywhere, `leave` whether
they are now present nowhere; `sweep` removes expired registrations and reports the users who
are then present nowhere. `leave` and `sweep` are atomic per thread, so a user who goes is
reported once, to one caller, whichever nodes ask at the same moment. `refresh` re-creates what
the store lost (a restarted Redis, a sweep after this node stalled past its TTL) and reports the
users it made present again. Every Redis failure, or no answer within `timeout_s`, raises
BrokerUnavailable: callers then fall back to what this node alone knows.

Redis keys, per thread, all under the prefix and expiring a while after the last write so an
abandoned thread leaves nothing behind: `{prefix}:presence:{thread}`, a sorted set of
`{user}|{node}` scored by expiry (ms); `{prefix}:presence-nodes:{thread}`, the same members at
score 0, so a user's registrations are one lexical range (join and leave never scan the thread);
and `{prefix}:presence-entry:{thread}`, a hash of user -> entry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol, TypeVar, cast
from uuid import UUID

import trio
from coredis.commands import Script

from hub.broker.redisstore import ClientSource, RedisStore, redis_answers

_T = TypeVar("_T")

DEFAULT_TIMEOUT_S = 1.0
# Registrations per script call in `refresh`, threads per call in `sweep`: one call runs alone
# in Redis, so a node with many sessions refreshes in several short ones, not one long one.
REFRESH_BATCH = 512
SWEEP_BATCH = 128


class ClusterPresence(Protocol):
    """Who is present in which thread over all live nodes (see the module's contract)."""

    async def join(self, thread_id: UUID, user_id: UUID, entry: bytes) -> bool:
        """Register this node's presence of the user in the thread, storing `entry` for the
        (thread, user). True if no other live node had the user in the thread (the user is new
        to the thread anywhere)."""
        ...

    async def leave(self, thread_id: UUID, user_id: UUID) -> bool:
        """Remove this node's registration. True if the user is now in the thread on no live
        node (their entry is removed too); also True if this node had none and nobody else has
        the user, so a caller may announce a departure twice, never miss one."""
        ...

    async def set_entry(self, thread_id: UUID, user_id: UUID, entry: bytes) -> None:
        """Replace the stored entry (a status change), if the user is present."""
        ...

    async def present(self, thread_id: UUID) -> dict[UUID, bytes]:
        """Entries of the users present on some live node. Expired registrations are ignored,
        not removed (that is `sweep`'s, which reports whom it removed)."""
        ...

    async def refresh(
        self, registrations: Iterable[tuple[UUID, UUID, bytes]]
    ) -> list[tuple[UUID, UUID]]:
        """Extend this node's registrations of these (thread, user, entry) to a full TTL from
        now. One the store no longer holds is re-created with its entry (the entry of another
        node present with the user is kept); the (thread, user) pairs so re-created while no
        other live node had the user are returned: the user is new to the thread again, as after
        a `join` that returned True."""
        ...

    async def sweep(self, thread_ids: Iterable[UUID]) -> dict[UUID, list[UUID]]:
        """Remove the expired registrations of these threads. Per thread that lost someone, the
        users now present on no live node (their entries removed); threads where nobody left are
        absent. Atomic per thread: when several nodes sweep one thread at once, each such user is
        reported to exactly one of them."""
        ...


# --- in memory: one process, any number of in-process nodes ----------------------------------


class MemoryPresenceState:
    """What the in-process nodes of one test cluster (or the one node of a hub without Redis)
    share, as Redis would hold it: registrations with their expiries, and entries."""

    def __init__(self) -> None:
        # thread -> user -> node -> expiry (the nodes' shared clock)
        self.expiries: dict[UUID, dict[UUID, dict[str, float]]] = {}
        self.entries: dict[UUID, dict[UUID, bytes]] = {}

    def forget(self, thread_id: UUID, user_id: UUID) -> None:
        """The user is in the thread nowhere: drop their registrations and entry."""
        users = self.expiries.get(thread_id, {})
        users.pop(user_id, None)
        if not users:
            self.expiries.pop(thread_id, None)
        entries = self.entries.get(thread_id, {})
        entries.pop(user_id, None)
        if not entries:
            self.entries.pop(thread_id, None)


class MemoryPresence:
    """ClusterPresence for nodes in one process, over a MemoryPresenceState they share. Every
    method is one checkpoint and then runs without yielding, so each is atomic, as a script is."""

    def __init__(
        self,
        state: MemoryPresenceState,
        *,
        node_id: str,
        ttl_s: float,
        clock: Callable[[], float] = trio.current_time,
    ) -> None:
        self.node_id = node_id
        self.ttl_s = ttl_s
        self._state = state
        self._clock = clock

    def _live_elsewhere(self, nodes: dict[str, float], now: float) -> bool:
        return any(expiry > now for node, expiry in nodes.items() if node != self.node_id)

    async def join(self, thread_id: UUID, user_id: UUID, entry: bytes) -> bool:
        await trio.lowlevel.checkpoint()
        now = self._clock()
        nodes = self._state.expiries.setdefault(thread_id, {}).setdefault(user_id, {})
        new = not self._live_elsewhere(nodes, now)
        nodes[self.node_id] = now + self.ttl_s
        self._state.entries.setdefault(thread_id, {})[user_id] = entry
        return new

    async def leave(self, thread_id: UUID, user_id: UUID) -> bool:
        await trio.lowlevel.checkpoint()
        nodes = self._state.expiries.get(thread_id, {}).get(user_id, {})
        nodes.pop(self.node_id, None)
        if self._live_elsewhere(nodes, self._clock()):
            return False
        self._state.forget(thread_id, user_id)
        return True

    async def set_entry(self, thread_id: UUID, user_id: UUID, entry: bytes) -> None:
        await trio.lowlevel.checkpoint()
        entries = self._state.entries.get(thread_id, {})
        if user_id in entries:
            entries[user_id] = entry

    async def present(self, thread_id: UUID) -> dict[UUID, bytes]:
        await trio.lowlevel.checkpoint()
        now = self._clock()
        entries = self._state.entries.get(thread_id, {})
        return {
            user_id: entries[user_id]
            for user_id, nodes in self._state.expiries.get(thread_id, {}).items()
            if user_id in entries and any(expiry > now for expiry in nodes.values())
        }

    async def refresh(
        self, registrations: Iterable[tuple[UUID, UUID, bytes]]
    ) -> list[tuple[UUID, UUID]]:
        await trio.lowlevel.checkpoint()
        now = self._clock()
        rejoined = []
        for thread_id, user_id, entry in registrations:
            nodes = self._state.expiries.setdefault(thread_id, {}).setdefault(user_id, {})
            entries = self._state.entries.setdefault(thread_id, {})
            if self.node_id not in nodes and not self._live_elsewhere(nodes, now):
                rejoined.append((thread_id, user_id))
                entries[user_id] = entry
            else:
                entries.setdefault(user_id, entry)
            nodes[self.node_id] = now + self.ttl_s
        return rejoined

    async def sweep(self, thread_ids: Iterable[UUID]) -> dict[UUID, list[UUID]]:
        await trio.lowlevel.checkpoint()
        now = self._clock()
        gone: dict[UUID, list[UUID]] = {}
        for thread_id in thread_ids:
            for user_id, nodes in list(self._state.expiries.get(thread_id, {}).items()):
                expired = [node for node, expiry in nodes.items() if expiry <= now]
                for node in expired:
                    del nodes[node]
                if expired and not nodes:
                    self._state.forget(thread_id, user_id)
                    gone.setdefault(thread_id, []).append(user_id)
        return gone


# --- Redis: every node of the hub ------------------------------------------------------------

# Shared by every script: the server's clock in ms, key lifetimes that only ever grow (nodes
# that differ in TTL never cut each other's short), and a user's registrations in a thread as
# one lexical range of the index (members `{user}|{node}`; `}` is the byte after `|`).
_LUA_COMMON = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function keep(key, ms)
  if redis.call('PTTL', key) < ms then redis.call('PEXPIRE', key, ms) end
end
local function registrations(index, user)
  return redis.call('ZRANGE', index, '[' .. user .. '|', '(' .. user .. '}', 'BYLEX')
end
local function live_elsewhere(expiries, index, user, mine, now)
  for _, member in ipairs(registrations(index, user)) do
    if member ~= mine then
      local expiry = redis.call('ZSCORE', expiries, member)
      if expiry and tonumber(expiry) > now then return true end
    end
  end
  return false
end
local function forget(expiries, index, entries, user)
  for _, member in ipairs(registrations(index, user)) do
    redis.call('ZREM', expiries, member)
    redis.call('ZREM', index, member)
  end
  redis.call('HDEL', entries, user)
end
local function user_of(member)
  return string.sub(member, 1, string.find(member, '|', 1, true) - 1)
end
"""

# KEYS: expiries, index, entries. ARGV: user, node, entry, ttl ms, key ttl ms. 1 if new anywhere.
_JOIN = (
    _LUA_COMMON
    + """
local now = now_ms()
local user, node, entry = ARGV[1], ARGV[2], ARGV[3]
local ttl, key_ttl = tonumber(ARGV[4]), tonumber(ARGV[5])
local mine = user .. '|' .. node
local new = not live_elsewhere(KEYS[1], KEYS[2], user, mine, now)
redis.call('ZADD', KEYS[1], now + ttl, mine)
redis.call('ZADD', KEYS[2], 0, mine)
redis.call('HSET', KEYS[3], user, entry)
for _, key in ipairs(KEYS) do keep(key, key_ttl) end
if new then return 1 end
return 0
"""
)

# KEYS: expiries, index, entries. ARGV: user, node. 1 if the user is now present nowhere.
_LEAVE = (
    _LUA_COMMON
    + """
local now = now_ms()
local user = ARGV[1]
local mine = user .. '|' .. ARGV[2]
redis.call('ZREM', KEYS[1], mine)
redis.call('ZREM', KEYS[2], mine)
if live_elsewhere(KEYS[1], KEYS[2], user, mine, now) then return 0 end
forget(KEYS[1], KEYS[2], KEYS[3], user)
return 1
"""
)

# KEYS: entries. ARGV: user, entry.
_SET_ENTRY = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
return 0
"""

# KEYS: expiries, entries. Flat user, entry, user, entry... of the live users.
_PRESENT = (
    _LUA_COMMON
    + """
local now = now_ms()
local out, seen = {}, {}
for _, member in ipairs(redis.call('ZRANGE', KEYS[1], '(' .. now, '+inf', 'BYSCORE')) do
  local user = user_of(member)
  if not seen[user] then
    seen[user] = true
    local entry = redis.call('HGET', KEYS[2], user)
    if entry then
      out[#out + 1] = user
      out[#out + 1] = entry
    end
  end
end
return out
"""
)

# KEYS: expiries, index, entries per thread. ARGV: node, ttl ms, key ttl ms, then per thread the
# number of users and that many user, entry. Per thread, the users re-created while new anywhere.
_REFRESH = (
    _LUA_COMMON
    + """
local now = now_ms()
local node, ttl, key_ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local at, result = 4, {}
for t = 1, #KEYS, 3 do
  local expiries, index, entries = KEYS[t], KEYS[t + 1], KEYS[t + 2]
  local rejoined = {}
  local count = tonumber(ARGV[at])
  at = at + 1
  for _ = 1, count do
    local user, entry = ARGV[at], ARGV[at + 1]
    at = at + 2
    local mine = user .. '|' .. node
    if not redis.call('ZSCORE', expiries, mine)
        and not live_elsewhere(expiries, index, user, mine, now) then
      rejoined[#rejoined + 1] = user
      redis.call('HSET', entries, user, entry)
    else
      redis.call('HSETNX', entries, user, entry)
    end
    redis.call('ZADD', expiries, now + ttl, mine)
    redis.call('ZADD', index, 0, mine)
  end
  keep(expiries, key_ttl)
  keep(index, key_ttl)
  keep(entries, key_ttl)
  result[#result + 1] = rejoined
end
return result
"""
)

# KEYS: expiries, index, entries per thread. Per thread, the users it left present nowhere.
_SWEEP = (
    _LUA_COMMON
    + """
local now = now_ms()
local result = {}
for t = 1, #KEYS, 3 do
  local expiries, index, entries = KEYS[t], KEYS[t + 1], KEYS[t + 2]
  local users, seen, gone = {}, {}, {}
  for _, member in ipairs(redis.call('ZRANGE', expiries, '-inf', now, 'BYSCORE')) do
    redis.call('ZREM', expiries, member)
    redis.call('ZREM', index, member)
    local user = user_of(member)
    if not seen[user] then
      seen[user] = true
      users[#users + 1] = user
    end
  end
  for _, user in ipairs(users) do
    if not live_elsewhere(expiries, index, user, '', now) then
      forget(expiries, index, entries, user)
      gone[#gone + 1] = user
    end
  end
  result[#result + 1] = gone
end
return result
"""
)


def _batches(items: Iterable[_T], size: int) -> Iterator[list[_T]]:
    batch: list[_T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


class RedisPresence(RedisStore):
    """ClusterPresence over Redis, shared by every node on it (see the module's contract and
    key layout). Scripts are sent by SHA through coredis's Script, which loads one again when
    Redis answers NOSCRIPT (a restarted Redis has forgotten them); they are bound to no client,
    so they follow the source to whichever client is current."""

    def __init__(self, client: ClientSource, **options: Any) -> None:
        super().__init__(client, **options)
        self._join = Script[bytes](script=_JOIN)
        self._leave = Script[bytes](script=_LEAVE)
        self._set_entry = Script[bytes](script=_SET_ENTRY)
        self._present = Script[bytes](script=_PRESENT)
        self._refresh = Script[bytes](script=_REFRESH)
        self._sweep = Script[bytes](script=_SWEEP)

    def _keys(self, thread_id: UUID) -> list[str]:
        """Expiries, index, entries."""
        return [
            f"{self._prefix}:presence:{thread_id}",
            f"{self._prefix}:presence-nodes:{thread_id}",
            f"{self._prefix}:presence-entry:{thread_id}",
        ]

    async def join(self, thread_id: UUID, user_id: UUID, entry: bytes) -> bool:
        args = [str(user_id), self.node_id, entry, self._ttl_ms, self._key_ttl_ms]
        with redis_answers("a presence join", self.timeout_s):
            new = await self._join(self._keys(thread_id), args, client=self._current())
        return new == 1

    async def leave(self, thread_id: UUID, user_id: UUID) -> bool:
        with redis_answers("a presence leave", self.timeout_s):
            gone = await self._leave(
                self._keys(thread_id), [str(user_id), self.node_id], client=self._current()
            )
        return gone == 1

    async def set_entry(self, thread_id: UUID, user_id: UUID, entry: bytes) -> None:
        entries = self._keys(thread_id)[2]
        with redis_answers("a presence entry", self.timeout_s):
            await self._set_entry([entries], [str(user_id), entry], client=self._current())

    async def present(self, thread_id: UUID) -> dict[UUID, bytes]:
        expiries, _, entries = self._keys(thread_id)
        with redis_answers("who is present", self.timeout_s):
            flat = cast(
                list[bytes], await self._present([expiries, entries], [], client=self._current())
            )
        return {UUID(flat[i].decode()): flat[i + 1] for i in range(0, len(flat), 2)}

    async def refresh(
        self, registrations: Iterable[tuple[UUID, UUID, bytes]]
    ) -> list[tuple[UUID, UUID]]:
        rejoined: list[tuple[UUID, UUID]] = []
        for batch in _batches(registrations, REFRESH_BATCH):
            by_thread: dict[UUID, list[tuple[UUID, bytes]]] = {}
            for thread_id, user_id, entry in batch:
                by_thread.setdefault(thread_id, []).append((user_id, entry))
            keys: list[str] = []
            args: list[str | bytes | int] = [self.node_id, self._ttl_ms, self._key_ttl_ms]
            for thread_id, users in by_thread.items():
                keys += self._keys(thread_id)
                args.append(len(users))
                for user_id, entry in users:
                    args += [str(user_id), entry]
            with redis_answers("a presence refresh", self.timeout_s):
                result = cast(
                    list[list[bytes]], await self._refresh(keys, args, client=self._current())
                )
            for thread_id, users_back in zip(by_thread, result, strict=True):
                rejoined += [(thread_id, UUID(user.decode())) for user in users_back]
        return rejoined

    async def sweep(self, thread_ids: Iterable[UUID]) -> dict[UUID, list[UUID]]:
        gone: dict[UUID, list[UUID]] = {}
        for batch in _batches(dict.fromkeys(thread_ids), SWEEP_BATCH):
            keys = [key for thread_id in batch for key in self._keys(thread_id)]
            with redis_answers("a presence sweep", self.timeout_s):
                result = cast(
                    list[list[bytes]], await self._sweep(keys, [], client=self._current())
                )
            for thread_id, users in zip(batch, result, strict=True):
                if users:
                    gone[thread_id] = [UUID(user.decode()) for user in users]
        return gone
