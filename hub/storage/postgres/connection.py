"""One asyncpg connection, owned by the hub and used from Trio through trio-asyncio.

asyncpg speaks asyncio; trio-asyncio runs an asyncio loop inside Trio (`trio_asyncio.open_loop`)
and `trio_asyncio.aio_as_trio` awaits an asyncio coroutine from a Trio task, cancelling it when
the Trio task is cancelled. Each such crossing costs the Trio thread a pass of the loop's
callbacks, so a `PgConnection` offers one kind of crossing: `run(fn, *args)` awaits
`fn(connection, *args)` on the asyncio side, and the engine puts a whole operation (a read, a
batch from BEGIN to COMMIT) into `fn` (docs/performance.md, decision register: "One asyncio hop
per PostgreSQL operation"). Only the two libraries' public APIs are used.

Orphaned asyncio errors. An asyncpg future nobody awaits any more (its operation was cancelled
by a deadline, then the connection broke under it) reports its exception to the loop's exception
handler, which asyncio logs. trio-asyncio's default handler also raises it into the Trio tree,
which would stop the whole hub for an error no caller is waiting on; every error of an operation
the hub awaits reaches it directly (and a lost connection is reconnected). So the hub sets its
own handler on the loop, with asyncio's public `set_exception_handler`: it logs, as plain asyncio
would, and the hub goes on (seen once: a node of the 2-node bench, overloaded, stopped on
`ConnectionError: unexpected connection_lost() call`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

import asyncpg
import trio_asyncio

log = logging.getLogger(__name__)

T = TypeVar("T")
P = ParamSpec("P")

# Work done on a new connection before anyone uses it (codecs, session settings), on the
# asyncio side.
Setup = Callable[[asyncpg.Connection], Awaitable[None]]


async def connect(dsn: str, *, setup: Setup | None = None, **options: Any) -> PgConnection:
    """Open a connection (`options` are `asyncpg.connect`'s) and run `setup` on it, in one
    crossing. Raises what asyncpg raises; a connection whose setup failed is dropped."""
    loop = trio_asyncio.current_loop.get()
    if loop is None:
        raise RuntimeError("PostgreSQL connections need trio_asyncio.open_loop() around them")
    if loop.get_exception_handler() is not log_orphaned_error:
        loop.set_exception_handler(log_orphaned_error)
    conn = await trio_asyncio.aio_as_trio(_connect, loop=loop)(dsn, setup, options)
    return PgConnection(conn, loop)


def log_orphaned_error(loop: Any, context: dict[str, Any]) -> None:
    """The loop's exception handler: an error no caller awaits is logged, not raised into the
    hub (see the module docstring)."""
    exception = context.get("exception")
    log.warning(
        "postgres: an error nobody awaited: %s%s",
        context.get("message", "unhandled error in the asyncio loop"),
        f" ({type(exception).__name__}: {exception})" if exception is not None else "",
    )


async def _connect(dsn: str, setup: Setup | None, options: dict[str, Any]) -> asyncpg.Connection:
    conn = await asyncpg.connect(dsn, **options)
    if setup is not None:
        try:
            await setup(conn)
        except BaseException:
            conn.terminate()
            raise
    return conn


class PgConnection:
    """An open asyncpg connection and the trio-asyncio loop it belongs to.

    asyncpg binds a connection to the loop that opened it, so every crossing goes to that loop,
    whichever Trio task makes it. Closing is the owner's to bound: `close` waits for the server
    to hang up unless cancelled, and callers give it a shielded scope with a deadline."""

    __slots__ = ("_conn", "_loop", "server_pid")

    def __init__(self, conn: asyncpg.Connection, loop: Any) -> None:
        self._conn = conn
        self._loop = loop
        self.server_pid: int = conn.get_server_pid()

    async def run(
        self,
        fn: Callable[Concatenate[asyncpg.Connection, P], Awaitable[T]],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """`await fn(connection, *args)` on the asyncio side, in one crossing. asyncpg's errors
        come back as they are; cancelling the caller cancels `fn`, which may leave the
        connection mid-protocol (terminate it then)."""
        return await trio_asyncio.aio_as_trio(fn, loop=self._loop)(self._conn, *args, **kwargs)

    async def execute(self, sql: str, *args: Any) -> str:
        """One statement, one crossing: for tools and tests, not the hub's hot paths."""
        return await self.run(asyncpg.Connection.execute, sql, *args)

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        """One query's rows, one crossing: for tools and tests, not the hub's hot paths."""
        return await self.run(asyncpg.Connection.fetch, sql, *args)

    def is_closed(self) -> bool:
        """Whether the connection is gone: closed or terminated here, or hung up by the server
        (seen once the loop has read the server's goodbye)."""
        return self._conn.is_closed()

    def terminate(self) -> None:
        """Drop the socket at once, whatever is in flight. Safe to repeat."""
        self._conn.terminate()

    async def close(self) -> None:
        """Tell the server goodbye and wait for it to hang up; if that fails or the caller is
        cancelled (its deadline passed), the socket is dropped instead and the error raised."""
        try:
            await self.run(asyncpg.Connection.close)
        except BaseException:
            self._conn.terminate()
            raise

    async def __aenter__(self) -> PgConnection:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
