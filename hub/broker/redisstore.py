"""What the Redis-backed stores of hub.broker share: how a Redis failure looks, which client is
current, and the part of a store that is the same for presence and limits (its node, its TTL,
its key lifetimes)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeAlias

import anyio
import coredis
import trio

from hub.broker.errors import BrokerUnavailable

DEFAULT_TIMEOUT_S = 1.0

# What a lost, refused or hung Redis looks like through coredis (which runs on anyio's streams).
REDIS_FAILURES = (
    coredis.exceptions.RedisError,
    OSError,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    anyio.EndOfStream,
)


RedisClient: TypeAlias = coredis.Redis[bytes]
# A client, or what names the current one (None while there is none): a broker that opens a new
# client each time it reconnects gives its stores `lambda: broker.client`, since a client whose
# context has exited raises RuntimeError, not a Redis error.
ClientSource: TypeAlias = RedisClient | Callable[[], RedisClient | None]


def current_client(source: ClientSource) -> RedisClient:
    """The client to use now; BrokerUnavailable when the source has none (Redis is down)."""
    client = source if isinstance(source, coredis.Redis) else source()
    if client is None:
        raise BrokerUnavailable("Redis is not connected")
    return client


@contextmanager
def redis_answers(what: str, timeout_s: float) -> Iterator[None]:
    """Run the Redis calls of the block within `timeout_s`; any failure, or no answer in time,
    becomes BrokerUnavailable naming `what`. A call abandoned at the deadline leaves coredis's
    connection usable: its reply, when it comes, is matched to the abandoned request."""
    try:
        with trio.fail_after(timeout_s):
            yield
    except trio.TooSlowError as exc:
        raise BrokerUnavailable(f"Redis did not answer {what} within {timeout_s} s") from exc
    except REDIS_FAILURES as exc:
        raise BrokerUnavailable(f"Redis failed {what}: {exc}") from exc
    except RuntimeError as exc:
        # coredis's pool raises a bare RuntimeError for a call that took the client just before
        # the broker's connection task closed it (seen in the 2-node bench: "Connection pool is
        # not initialized or has exited"). Only Redis calls run in this block.
        raise BrokerUnavailable(f"Redis closed under {what}: {exc}") from exc


class RedisStore:
    """A store over Redis for one node: registrations named `{user}|{node}`, expiring `ttl_s`
    after their last refresh, in keys that outlive them (twice the TTL and a second) so a key
    goes once every node has stopped writing it."""

    def __init__(
        self,
        client: ClientSource,
        *,
        prefix: str,
        node_id: str,
        ttl_s: float,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        if "|" in node_id:
            raise ValueError(f"a node id cannot contain '|' (it separates fields): {node_id!r}")
        self.node_id = node_id
        self.ttl_s = ttl_s
        self.timeout_s = timeout_s
        self._client = client
        self._prefix = prefix
        self._ttl_ms = max(1, round(ttl_s * 1000))
        self._key_ttl_ms = 2 * self._ttl_ms + 1000

    def _current(self) -> RedisClient:
        return current_client(self._client)
