"""PostgreSQL, for production: asyncpg driven from Trio through trio-asyncio.

The storage actor owns the write connections (one per lane); reads use connections of their own
(hub.storage.postgres.reads) and never queue behind writes. Messages take a bulk path (unnest
arrays) so a batch of 1,000 costs a handful of round trips, falling back to row-by-row only when
some row must fail on its own.

Each whole operation (a read, or a batch from BEGIN to COMMIT) crosses from Trio into asyncio
once (`PgConnection.run`, hub.storage.postgres.connection): its statements run back to back
inside one asyncio coroutine. A crossing per statement profiled at a third of the hub's CPU under
load (docs/performance.md, decision register: "One asyncio hop per PostgreSQL operation").
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import msgspec
import trio_asyncio

from hub.storage.append import bulk_append
from hub.storage.engine import Engine, Stepper
from hub.storage.packed import nested_query
from hub.storage.postgres.append import PostgresAppend
from hub.storage.postgres.connection import PgConnection, connect
from hub.storage.postgres.nested import POSTGRES
from hub.storage.postgres.reads import ReadConnections
from hub.storage.records import SealedMessage, StoredMessage
from hub.storage.sql import ConnectionLost, IntegrityError, Op, Query, StatementError

T = TypeVar("T")

_json_encoder = msgspec.json.Encoder()

# Errors that mean the database or the connection is gone, not that a statement was wrong.
_UNAVAILABLE = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    # The driver's protocol state is broken (seen after the server terminated the backend
    # mid-operation): the connection is unusable.
    asyncpg.exceptions.InternalClientError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.exceptions.InvalidCatalogNameError,
    # lock_timeout: another session held a row the batch needs for too long.
    asyncpg.exceptions.LockNotAvailableError,
    OSError,
    TimeoutError,
    asyncio.TimeoutError,
)

_INTEGRITY_KINDS = {
    asyncpg.UniqueViolationError: "unique",
    asyncpg.ForeignKeyViolationError: "foreign_key",
    asyncpg.NotNullViolationError: "not_null",
    asyncpg.CheckViolationError: "check",
}

# Any failure to connect means "cannot reach the database now", whatever its SQLSTATE
# (for example 55000 while a database refuses connections).
log = logging.getLogger(__name__)
_CONNECT_FAILURES = (*_UNAVAILABLE, asyncpg.PostgresError)

# Deadlocks and serialization failures: the transaction did nothing; running it again is safe.
RETRYABLE = asyncpg.exceptions.TransactionRollbackError
RETRIES = 3


async def _init_connection(conn: asyncpg.Connection) -> None:
    for name in ("json", "jsonb"):
        await conn.set_type_codec(
            name,
            encoder=lambda value: _json_encoder.encode(value).decode(),
            decoder=msgspec.json.decode,
            schema="pg_catalog",
        )


async def _init_writer(conn: asyncpg.Connection, *, lock_timeout_ms: int) -> None:
    await _init_connection(conn)
    # A batch waiting on a row another session holds fails within the storage timeout (and its
    # callers hear so) instead of waiting for the 10 s query timeout.
    await conn.execute(f"SET lock_timeout = {lock_timeout_ms}")


async def _run(conn: asyncpg.Connection, query: Query) -> Any:
    if query.mode == "script":
        return await conn.execute(query.sql)
    if query.mode == "executemany":
        return await conn.executemany(query.sql, query.args[0])
    if query.mode == "execute":
        return await conn.execute(query.sql, *query.args)
    if query.mode == "fetch":
        return [dict(row) for row in await conn.fetch(query.sql, *query.args)]
    if query.mode == "fetchrow":
        if query.nested:
            composed = nested_query(
                query.sql, len(query.args), tuple(n.spec for n in query.nested), POSTGRES
            )
            row = await conn.fetchrow(composed.sql, *query.all_args)
            return composed.row(None if row is None else dict(row))
        row = await conn.fetchrow(query.sql, *query.args)
        return None if row is None else dict(row)
    return await conn.fetchval(query.sql, *query.args)


# Statements that only mark a transaction's savepoints: no parameters, no rows, and (inside a
# healthy transaction) no failure of their own.
_SAVEPOINT_STATEMENTS = ("SAVEPOINT ", "RELEASE SAVEPOINT ", "ROLLBACK TO SAVEPOINT ")


def _held_back(query: Query) -> bool:
    return (
        query.mode == "execute" and not query.args and query.sql.startswith(_SAVEPOINT_STATEMENTS)
    )


async def _drive(conn: asyncpg.Connection, op: Op[T], pending: list[str] | None = None) -> T:
    """Run `op`'s queries in order. With `pending` (a write transaction), savepoint statements
    are held back and sent, in order, in one simple-protocol round trip with the statements
    around them (BEGIN, the previous savepoint statements, COMMIT) rather than one each, since
    each round trip of the writer also waits for the Trio loop to come round before its answer
    is read. How much that costs depends on the load: under heavy load one more round trip per
    batch was no worse, so the bigger share of a commit under load is the Trio thread's own
    work, not the number of round trips (docs/performance.md, decision register: "One asyncio
    hop per PostgreSQL operation, four round trips per batch")."""
    stepper = Stepper(op)
    query = stepper.advance()
    while query is not None:
        if pending is not None:
            if _held_back(query):
                pending.append(query.sql)
                query = stepper.advance(None)
                continue
            if pending:
                await conn.execute("; ".join(pending))
                pending.clear()
        try:
            result = await _run(conn, query)
        except asyncpg.IntegrityConstraintViolationError as exc:
            kind = next((k for cls, k in _INTEGRITY_KINDS.items() if isinstance(exc, cls)), "check")
            query = stepper.advance(error=IntegrityError(kind, str(exc)))
        except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            refused = _refused_statement(exc)
            if refused is None:
                raise
            query = stepper.advance(error=refused)
        else:
            query = stepper.advance(result)
    return stepper.result


def _refused_statement(exc: Exception) -> StatementError | None:
    """The statement-level failure `exc` is, or None when it means the connection or the
    transaction as a whole (unavailable, or to be retried). asyncpg refuses an argument it
    cannot encode (an int beyond int64) before sending it, with an error that is both an
    InterfaceError and a ValueError; the server refuses values in SQLSTATE class 22."""
    if isinstance(exc, asyncpg.InterfaceError) and isinstance(exc, ValueError):
        return StatementError(f"PostgreSQL refused an argument: {exc}", bad_input=True)
    if isinstance(exc, _UNAVAILABLE) or isinstance(exc, RETRYABLE):
        return None
    bad_input = isinstance(exc, asyncpg.exceptions.DataError)
    sqlstate = getattr(exc, "sqlstate", "?")
    return StatementError(f"PostgreSQL {sqlstate}: {exc}", bad_input=bad_input)


def _lost(exc: BaseException) -> ConnectionLost:
    return ConnectionLost(f"PostgreSQL: {type(exc).__name__}: {exc}".rstrip(": "))


async def _transaction(conn: asyncpg.Connection, make_op: Callable[[], Op[T]]) -> T:
    """One transaction, run inside asyncio; retried when PostgreSQL says it did nothing."""
    for attempt in range(RETRIES):
        try:
            pending = ["BEGIN"]  # sent with the first statement that must go out
            try:
                value = await _drive(conn, make_op(), pending)
                pending.append("COMMIT")
                await conn.execute("; ".join(pending))
            except BaseException:
                # Also after a failed last round trip: a savepoint statement that failed
                # before its COMMIT leaves the transaction open.
                if not conn.is_closed() and conn.is_in_transaction():
                    await conn.execute("ROLLBACK")
                raise
            return value
        except RETRYABLE:
            if attempt == RETRIES - 1:
                raise
    raise AssertionError("unreachable")


class PostgresWriter:
    """One lane's write connection; the storage actor drops it (`aclose`) after a failure and
    connects a new one."""

    def __init__(self, conn: PgConnection) -> None:
        self._conn = conn

    async def commit(self, make_op: Callable[[], Op[T]]) -> T:
        try:
            return await self._conn.run(_transaction, make_op)
        except _UNAVAILABLE as exc:
            raise _lost(exc) from exc

    async def aclose(self) -> None:
        try:
            await self._conn.close()
        except _UNAVAILABLE:
            pass  # gone already; `close` dropped the socket


class PostgresEngine(Engine):
    name = "postgres"
    migrations_dir = Path(__file__).parent / "migrations"
    migration_lock_sql = "SELECT pg_advisory_xact_lock(7312026)"
    parallel_writers = True

    def __init__(
        self,
        dsn: str,
        *,
        read_pool_size: int = 8,
        command_timeout_s: float = 10.0,
        lock_timeout_s: float = 4.0,
        connect_timeout_s: float = 10.0,
    ) -> None:
        self.dsn = dsn
        # asyncpg waits 60 s by default for a host that takes the TCP connection and says
        # nothing; the storage actor would be stuck that long in one reconnect attempt.
        self._connect_timeout_s = connect_timeout_s
        self._lock_timeout_ms = int(lock_timeout_s * 1000)
        self._read_pool_size = read_pool_size
        self._command_timeout_s = command_timeout_s
        self._reads: ReadConnections | None = None

    async def open(self) -> None:
        if trio_asyncio.current_loop.get() is None:
            raise RuntimeError("the PostgreSQL engine needs trio_asyncio.open_loop() around it")
        reads = ReadConnections(
            self._read_pool_size,
            self._connect_reader,
            _drive,
            _UNAVAILABLE,
        )
        # Every read connection up front: a hub that cannot reach its database says so at start,
        # and the first burst of requests does not wait for connections to open.
        try:
            await reads.fill()
        except BaseException as exc:
            await reads.aclose()  # the ones opened before the failure
            if isinstance(exc, _UNAVAILABLE):
                raise _lost(exc) from exc
            raise
        self._reads = reads

    async def _connect_reader(self) -> PgConnection:
        # No timers per read. asyncpg schedules a timer for every query with a timeout and for
        # every cached statement, and cancels the first soon after. trio-asyncio's loop keeps a
        # cancelled timer until it would have fired (asyncio's own loop purges them), and each
        # timer holds a copy of the context it was made in: the request's. Under load the hub
        # held thousands of finished requests alive through about 7,800 such timers (asyncpg's
        # pool added idle-lifetime timers of 300 s), its collector kept walking them, and its
        # memory grew while it stayed flat without them (docs/performance.md, decision
        # register: "PostgreSQL read connections of the hub's own"). Reads are bounded by
        # `Storage.read`'s own deadline (HUB_STORAGE_TIMEOUT_S, which cancels the query, and the
        # connection is then dropped), and statements stay prepared (a few dozen texts).
        # Timestamps inside JSON (hub.storage.postgres.nested) are written in the session's zone.
        try:
            return await connect(
                self.dsn,
                setup=_init_connection,
                timeout=self._connect_timeout_s,
                command_timeout=None,
                max_cached_statement_lifetime=0,
                server_settings={"timezone": "UTC"},
            )
        except _CONNECT_FAILURES as exc:
            raise _lost(exc) from exc

    async def aclose(self) -> None:
        if self._reads is not None:
            reads, self._reads = self._reads, None
            await reads.aclose()

    async def connect_writer(self) -> PostgresWriter:
        try:
            conn = await connect(
                self.dsn,
                setup=partial(_init_writer, lock_timeout_ms=self._lock_timeout_ms),
                timeout=self._connect_timeout_s,
                command_timeout=self._command_timeout_s,
            )
        except _CONNECT_FAILURES as exc:
            raise _lost(exc) from exc
        return PostgresWriter(conn)

    async def scrub_keys(self) -> None:
        """Rewrite the key table into new files (VACUUM FULL: a few rows, a moment's lock), so
        the row versions that held destroyed keys leave the live database's files. WAL
        segments and backups taken before keep them; docs/privacy.md says what follows."""
        try:
            async with await connect(
                self.dsn, timeout=self._connect_timeout_s, command_timeout=60
            ) as conn:
                await conn.execute("VACUUM FULL message_encryption_keys")
        except _CONNECT_FAILURES as exc:
            log.warning("storage: rewriting the key table after an erasure failed: %s", exc)

    async def read(self, op: Op[T]) -> T:
        if self._reads is None:
            raise ConnectionLost("PostgreSQL: the engine is closed")
        try:
            return await self._reads.read(op)
        except _UNAVAILABLE as exc:
            raise _lost(exc) from exc

    def append_messages(
        self, messages: Sequence[SealedMessage], now: datetime
    ) -> Op[list[StoredMessage | Exception]]:
        return bulk_append(PostgresAppend(), messages, now)
