"""Token buckets: per user and per class of action (reads, writes, message sends).

Used by REST (per route class) and by WebSocket sessions (per user's message sends). Buckets live
in memory per process, bounded by an LRU so a flood of distinct users cannot grow it without limit.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from hub.errors import RateLimited


@dataclass(frozen=True, slots=True)
class Budget:
    """`rate` tokens per second, bursting up to `burst`."""

    rate: float
    burst: float


@dataclass(slots=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_s: float  # seconds until the bucket is full again
    retry_after_s: float  # seconds until one token is available (0 when allowed)


class _Bucket:
    __slots__ = ("tokens", "updated")

    def __init__(self, tokens: float, updated: float) -> None:
        self.tokens = tokens
        self.updated = updated


class RateLimiter:
    def __init__(
        self,
        budget: Budget,
        *,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.budget = budget
        self._buckets: OrderedDict[Hashable, _Bucket] = OrderedDict()
        self._max_keys = max_keys
        self._clock = clock

    def take(self, key: Hashable, cost: float = 1.0) -> Decision:
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = _Bucket(self.budget.burst, now)
            self._buckets[key] = bucket
            if len(self._buckets) > self._max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            elapsed = max(0.0, now - bucket.updated)
            bucket.tokens = min(self.budget.burst, bucket.tokens + elapsed * self.budget.rate)
            bucket.updated = now
        allowed = bucket.tokens >= cost
        if allowed:
            bucket.tokens -= cost
        missing = self.budget.burst - bucket.tokens
        return Decision(
            allowed=allowed,
            limit=int(self.budget.burst),
            remaining=int(bucket.tokens),
            reset_s=missing / self.budget.rate if self.budget.rate else 0.0,
            retry_after_s=0.0 if allowed else (cost - bucket.tokens) / self.budget.rate,
        )

    def check(self, key: Hashable, what: str, cost: float = 1.0) -> Decision:
        """Take a token or raise RateLimited saying when to retry."""
        decision = self.take(key, cost)
        if not decision.allowed:
            raise RateLimited(
                f"too many {what}; retry in {decision.retry_after_s:.1f}s",
                retry_after_s=decision.retry_after_s,
            )
        return decision
