"""Choosing and opening the engine `HUB_DATABASE_URL` names.

Apart from `hub.storage.engine` (the interface both engines import), so that naming the engines
here makes no import cycle. `open_engine` is what tools and tests use to talk to the database
without the storage actor; `hub.storage.handle.open_storage` builds on it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator

from hub.config import Settings, sqlite_path
from hub.errors import StorageUnavailable
from hub.storage.engine import Engine
from hub.storage.sql import ConnectionLost


def make_engine(settings: Settings) -> Engine:
    """The engine `HUB_DATABASE_URL` names, not yet opened."""
    if settings.backend == "sqlite":
        from hub.storage.sqlite.engine import SqliteEngine

        # Leave the caller's own deadline room to see the actor's clearer "unavailable" answer.
        return SqliteEngine(
            sqlite_path(settings.database_url), busy_timeout_s=settings.storage_timeout_s * 0.8
        )
    from hub.storage.postgres.engine import PostgresEngine

    return PostgresEngine(settings.database_url, lock_timeout_s=settings.storage_timeout_s * 0.8)


@contextlib.contextmanager
def unwrap_single_error() -> Iterator[None]:
    """Raise the one error inside nested single-exception groups as itself.

    The nurseries of `open_engine` and `open_storage` (and trio-asyncio's loop) are details of
    those context managers; callers should see `WrongMasterKey`, not an exception group around
    it."""
    try:
        yield
    except BaseExceptionGroup as group:
        leaf: BaseException = group
        while isinstance(leaf, BaseExceptionGroup) and len(leaf.exceptions) == 1:
            leaf = leaf.exceptions[0]
        if isinstance(leaf, BaseExceptionGroup):
            raise
        raise leaf from group


@contextlib.asynccontextmanager
async def open_engine(settings: Settings) -> AsyncIterator[Engine]:
    """An opened engine (with the asyncio bridge PostgreSQL needs), for tools and tests that
    talk to the database without the storage actor."""
    with unwrap_single_error():
        async with contextlib.AsyncExitStack() as stack:
            engine = make_engine(settings)
            if engine.name == "postgres":
                import trio_asyncio

                if trio_asyncio.current_loop.get() is None:
                    await stack.enter_async_context(trio_asyncio.open_loop())
            try:
                await engine.open()
            except ConnectionLost as exc:
                raise StorageUnavailable(f"cannot reach the database: {exc}") from None
            stack.push_async_callback(engine.aclose)
            yield engine
