"""SQLite reads: on the Trio thread while they are short, in a worker thread once they are not.

Most reads the hub serves are a few index lookups and a page of history that SQLite builds in one
step (hub.storage.sqlite.packed): about 0.3 ms all told. Sending each one to a worker thread cost
more than the read itself: a hand-over to the thread and a wake-up of the Trio loop back, and
the reader thread and the Trio thread taking the GIL from each other in between, in CPU per
request and in latency (docs/performance.md, decision register: "Inline SQLite reads with a
budget").

A read that is not short must not hold up the event loop, so every read starts on the Trio
thread with a budget (`INLINE_BUDGET_S`). A progress handler interrupts the statement that runs
past it, and a reader connection waits for no lock there (busy timeout zero; in WAL mode a reader
only meets one while another connection recovers or restarts the WAL). Either way the read moves
to a worker thread with its connection and its open transaction, so with its snapshot: the
statement runs again there, without budget and with the usual busy timeout, and the rest of the
read follows. What the caller gets is the same either way: one read, one consistent snapshot.
The budget is checked between SQLite VM steps, so it is a soft limit: a single step that does a
lot (sorting many rows, say) runs to its end before the read can move.
"""

from __future__ import annotations

import contextlib
import math
import queue
import sqlite3
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import trio

from hub.storage.engine import Stepper
from hub.storage.sql import ConnectionLost, Op, Query
from hub.storage.sqlite import worker

T = TypeVar("T")

# How long a read may keep the Trio thread before it moves to a worker thread.
INLINE_BUDGET_S = 0.002
# The progress handler runs every this many SQLite VM steps (a page of 50 messages is about
# 2,000): often enough to keep to the budget, rarely enough to cost nothing.
_PROGRESS_STEPS = 1000
_MOVE_CODES = (sqlite3.SQLITE_INTERRUPT, sqlite3.SQLITE_BUSY)


class _Budget:
    """The progress handler of one reader connection: interrupts a statement once the read has
    passed its deadline (infinite outside inline reads)."""

    __slots__ = ("deadline",)

    def __init__(self) -> None:
        self.deadline = math.inf

    def __call__(self) -> bool:
        return time.perf_counter() > self.deadline


class _Reader:
    __slots__ = ("budget", "conn")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.budget = _Budget()
        conn.execute("PRAGMA busy_timeout = 0")
        conn.set_progress_handler(self.budget, _PROGRESS_STEPS)


class Readers:
    """The engine's reader connections and the two ways a read runs on them."""

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        run: Callable[[sqlite3.Connection, Query], Any],
        *,
        threads: int,
        max_open: int,
        busy_timeout_s: float,
        is_unavailable: Callable[[sqlite3.Error], bool],
    ) -> None:
        self._connect = connect
        self._run = run
        self._busy_timeout_ms = int(busy_timeout_s * 1000)
        self._is_unavailable = is_unavailable
        self._idle: queue.SimpleQueue[_Reader] = queue.SimpleQueue()
        self._opened: list[sqlite3.Connection] = []
        self._threads = trio.CapacityLimiter(threads)
        # A moved read keeps its connection (and its snapshot, which holds back checkpoints)
        # while it waits for a thread: at most this many reads are open at once, the rest wait
        # before they start.
        self._open = trio.Semaphore(max_open)
        self.moved = 0  # reads finished in a worker thread (the tests and docs read it)

    async def read(self, op: Op[T]) -> T:
        """Run `op` in one read transaction and return its result."""
        await trio.lowlevel.checkpoint()
        try:
            self._open.acquire_nowait()
        except trio.WouldBlock:
            await self._open.acquire()
        try:
            return await self._read(op)
        finally:
            self._open.release()

    async def _read(self, op: Op[T]) -> T:
        with self._as_connection_lost():
            reader = self._take()
            stepper = Stepper(op)
            moving = False
            try:
                reader.budget.deadline = time.perf_counter() + INLINE_BUDGET_S
                reader.conn.execute("BEGIN")
                query = stepper.advance()
                while query is not None:
                    try:
                        result = self._run(reader.conn, query)
                    except sqlite3.OperationalError as exc:
                        if (exc.sqlite_errorcode & 0xFF) not in _MOVE_CODES:
                            raise
                        moving = True
                        break
                    query = stepper.advance(result)
                else:
                    return stepper.result
            finally:
                if not moving:
                    self._release(reader)
        return await self._move(reader, stepper, query)

    async def _move(self, reader: _Reader, stepper: Stepper, query: Query) -> Any:
        """The rest of a read in a worker thread, from the statement that was interrupted or
        met a lock, in the same transaction. The thread releases the connection; if the caller
        is cancelled before a thread takes the read, it is released here."""
        self.moved += 1
        taken = False

        def finish() -> Any:
            nonlocal taken
            taken = True
            return self._finish(reader, stepper, query)

        try:
            return await worker.run_sync(finish, limiter=self._threads)
        finally:
            if not taken:
                self._release(reader)

    def _finish(self, reader: _Reader, stepper: Stepper, query: Query | None) -> Any:
        conn = reader.conn
        try:
            with self._as_connection_lost():
                conn.set_progress_handler(None, 0)
                conn.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")
                while query is not None:
                    query = stepper.advance(self._run(conn, query))
                return stepper.result
        finally:
            try:
                conn.execute("PRAGMA busy_timeout = 0")
                conn.set_progress_handler(reader.budget, _PROGRESS_STEPS)
            finally:
                self._release(reader)

    @contextlib.contextmanager
    def _as_connection_lost(self) -> Iterator[None]:
        """SQLite errors that mean the database cannot be used now become ConnectionLost."""
        try:
            yield
        except sqlite3.Error as exc:
            if self._is_unavailable(exc):
                raise ConnectionLost(f"SQLite: {exc}") from exc
            raise

    def _take(self) -> _Reader:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            conn = self._connect()
            self._opened.append(conn)
            return _Reader(conn)

    def _release(self, reader: _Reader) -> None:
        reader.budget.deadline = math.inf
        try:
            if reader.conn.in_transaction:
                reader.conn.execute("COMMIT")
        finally:
            self._idle.put(reader)

    def close(self) -> None:
        for conn in self._opened:
            conn.close()
        self._opened.clear()
