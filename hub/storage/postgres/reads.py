"""PostgreSQL reads: a few connections of the hub's own, handed out on the Trio side.

asyncpg's pool does its bookkeeping in asyncio (a queue of holders, a shielded task per
release), and under trio-asyncio every asyncio callback is a pass of a Trio task. Taking a
connection from it and giving it back cost the Trio thread more than the query itself
(docs/performance.md, decision register: "PostgreSQL read connections of the hub's own").
Here a semaphore bounds the reads in flight and a queue holds the idle connections, both in
Trio: taking one is a pop.

What asyncpg's pool did besides, and how it is done here:
- A read that fails or is cancelled may leave its connection mid-protocol (a statement still
  running, a cancel request in flight). Such a connection is terminated, never reused; the next
  read opens a fresh one.
- A connection that the server closed while idle (a restart, `pg_terminate_backend`) is
  dropped when taken: asyncpg marks it closed as soon as the loop reads the server's goodbye.
  Should a read still meet it first, that read fails as unavailable (as with asyncpg's pool)
  and the connection is terminated.
- All `size` connections open at start (`fill`) and stay open while idle (no timers: see
  `PostgresEngine._connect_reader`). Opened on demand instead, the first burst of reads queued
  behind the opening, enough to set a run's p99 (same register entry). One that is dropped is
  replaced on demand.
- Reads take the connection idle longest (first in, first out), so every connection serves
  reads and has its statements prepared (asyncpg prepares each per connection) before a burst.
  Handed out last in, first out, a light load (the bench's warm-up) kept to one or two of them,
  and the first burst then ran on connections that had served no read yet while requests
  queued, and the slowest GETs of a run came in its first moments.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
import trio

from hub.storage.postgres.connection import PgConnection
from hub.storage.sql import Op

T = TypeVar("T")


class ReadConnections:
    """At most `size` connections, each running one read at a time.

    `connect` opens one; `drive` runs an operation on the asyncio side, given the asyncpg
    connection (each read is one crossing: `PgConnection.run`); `unavailable` are the exceptions
    that mean the connection or the database is gone."""

    def __init__(
        self,
        size: int,
        connect: Callable[[], Awaitable[PgConnection]],
        drive: Callable[[asyncpg.Connection, Op[Any]], Awaitable[Any]],
        unavailable: tuple[type[BaseException], ...],
    ) -> None:
        self._size = size
        self._slots = trio.Semaphore(size)
        self._idle: deque[PgConnection] = deque()
        self._connect = connect
        self._drive = drive
        self._unavailable = unavailable
        self._closed = False

    async def fill(self) -> None:
        """Open connections until `size` are idle; before the first read."""
        while len(self._idle) < self._size:
            self._idle.append(await self._connect())

    async def read(self, op: Op[T]) -> T:
        async with self._slots:
            if self._closed:
                raise trio.ClosedResourceError("the read connections are closed")
            conn = None
            while self._idle and conn is None:
                conn = self._idle.popleft()
                if conn.is_closed():
                    conn = None
            if conn is None:
                conn = await self._connect()
            try:
                result = await conn.run(self._drive, op)
            except BaseException:
                conn.terminate()
                raise
            if conn.is_closed() or self._closed:
                conn.terminate()
            else:
                self._idle.append(conn)
            return result

    async def aclose(self) -> None:
        """Close the idle connections, all at once, within 2 s (else each is terminated), so
        a database that stopped answering delays shutdown by 2 s, not 2 s per connection; one
        still reading is terminated when its read ends."""
        self._closed = True
        idle, self._idle = self._idle, deque()
        with trio.move_on_after(2) as scope:
            scope.shield = True
            async with trio.open_nursery() as nursery:
                for conn in idle:
                    nursery.start_soon(self._close, conn)

    async def _close(self, conn: Any) -> None:
        try:
            await conn.close()
        except self._unavailable:
            pass  # `close` dropped the socket
