"""SQLite, the embedded default: one write connection in a worker thread, WAL readers beside it.

A whole group-commit batch runs in one worker-thread hop, so the cost of leaving the event loop is
paid once per commit, not once per statement. Reads run on the Trio thread while they are short
and move to a worker thread when they are not (hub.storage.sqlite.reads).
"""

from __future__ import annotations

import functools
import logging
import math
import re
import sqlite3
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import trio

from hub.storage.append import bulk_append
from hub.storage.engine import Engine, Stepper, script_statements
from hub.storage.packed import nested_query
from hub.storage.records import SealedMessage, StoredMessage
from hub.storage.sql import ConnectionLost, IntegrityError, Op, Query, StatementError
from hub.storage.sqlite import (
    types,  # noqa: F401 (registers adapters and converters)
    worker,
)
from hub.storage.sqlite.append import SqliteAppend
from hub.storage.sqlite.packed import SQLITE, packed_query
from hub.storage.sqlite.reads import Readers

T = TypeVar("T")

log = logging.getLogger(__name__)

# Where the WAL is checkpointed into the database file depends on load (see SqliteEngine).
# A batch of this many requests means the writer is behind: for the next BUSY_HOLD_S the
# engine's own task checkpoints, at most every CHECKPOINT_INTERVAL_S, and the writer does not.
SCRUB_WAIT_S = 1.0  # how long a scrub waits for the writer and readers
BUSY_BATCH = 64
BUSY_HOLD_S = 2.0
CHECKPOINT_INTERVAL_S = 0.5
# SQLite's default: under light load the writer checkpoints once the WAL holds this many pages.
INLINE_CHECKPOINT_PAGES = 1000
# A WAL that passive checkpoints cannot reset (readers always on an old snapshot) is restarted
# once it holds this many pages (about 80 MB): that waits for readers and briefly blocks writes.
WAL_RESTART_PAGES = 20_000

# Reads open at once (hub.storage.sqlite.reads): short ones run one at a time on the Trio thread,
# so only reads that moved to a worker thread, running or waiting for one, count against this.
MAX_OPEN_READS = 32

# SQLite result codes (low byte) that mean "the database is not usable right now", as opposed to
# a mistake in a statement: busy/locked, out of memory, read-only, I/O error, corrupt, full,
# cannot open, protocol, not a database.
_UNAVAILABLE_CODES = {5, 6, 7, 8, 10, 11, 13, 14, 15, 26}


@functools.lru_cache(maxsize=512)
def _sqlite_sql(sql: str) -> str:
    return re.sub(r"\$(\d+)", r"?\1", sql)


def _dict_row(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> dict[str, Any]:
    return {column[0]: value for column, value in zip(cursor.description, row, strict=True)}


def _run(conn: sqlite3.Connection, query: Query) -> Any:
    if query.mode == "script":
        for statement in script_statements(query.sql):
            conn.execute(statement)
        return None
    sql = _sqlite_sql(query.sql)
    if query.mode == "executemany":
        conn.executemany(sql, query.args[0])
        return None
    if query.mode == "fetch" and query.shape is not None:
        packed = packed_query(sql, query.shape)
        return packed.rows(conn.execute(packed.sql, query.args).fetchone()["packed"])
    if query.nested:
        composed = nested_query(
            query.sql, len(query.args), tuple(n.spec for n in query.nested), SQLITE
        )
        return composed.row(conn.execute(_sqlite_sql(composed.sql), query.all_args).fetchone())
    cursor = conn.execute(sql, query.args)
    if query.mode == "execute":
        return None
    if query.mode == "fetch":
        return cursor.fetchall()
    row = cursor.fetchone()
    if query.mode == "fetchrow" or row is None:
        return row
    return next(iter(row.values()))


def _integrity_kind(message: str) -> str:
    for marker, kind in (
        ("UNIQUE", "unique"),
        ("FOREIGN KEY", "foreign_key"),
        ("NOT NULL", "not_null"),
        ("CHECK", "check"),
    ):
        if marker in message:
            return kind
    return "check"


def _drive(conn: sqlite3.Connection, op: Op[T]) -> T:
    stepper = Stepper(op)
    query = stepper.advance()
    while query is not None:
        try:
            result = _run(conn, query)
        except sqlite3.IntegrityError as exc:
            query = stepper.advance(error=IntegrityError(_integrity_kind(str(exc)), str(exc)))
        except (sqlite3.Error, OverflowError) as exc:
            if isinstance(exc, sqlite3.Error) and _is_unavailable(exc):
                raise
            # OverflowError: an int beyond SQLite's 64-bit INTEGER, refused while binding.
            bad_input = isinstance(exc, OverflowError | sqlite3.DataError)
            error = StatementError(f"SQLite: {type(exc).__name__}: {exc}", bad_input=bad_input)
            query = stepper.advance(error=error)
        else:
            query = stepper.advance(result)
    return stepper.result


def _is_unavailable(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and (code & 0xFF) in _UNAVAILABLE_CODES


def _use_wal(conn: sqlite3.Connection, busy_timeout_s: float) -> None:
    """Switch to WAL, retrying while another connection briefly holds the database (the
    switch does not wait on SQLite's busy handler); a no-op once the file is in WAL mode."""
    deadline = time.monotonic() + busy_timeout_s
    while True:
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()["journal_mode"] == "wal":
                return
            conn.execute("PRAGMA journal_mode = WAL")
        except sqlite3.OperationalError as exc:
            if not _is_unavailable(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)  # in a worker thread, never on the Trio thread


def _connect(path: Path, busy_timeout_s: float, *, writer: bool) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(
            path,
            timeout=busy_timeout_s,
            detect_types=sqlite3.PARSE_DECLTYPES,
            isolation_level=None,  # we issue BEGIN/COMMIT ourselves
            cached_statements=512,  # the bulk append's statements come in many row counts
            check_same_thread=False,  # used from Trio's worker threads, one at a time
        )
        conn.row_factory = _dict_row
        conn.execute("PRAGMA foreign_keys = ON")
        # SQLite's default page cache is 2 MB; the writer walks four indexes per message, and
        # with 64 MB it spends less CPU and commits sooner (docs/performance.md, decision
        # register: "SQLite's writer"). Readers keep the threads' recent pages.
        conn.execute(f"PRAGMA cache_size = {-65536 if writer else -16384}")
        if writer:
            # WAL lets readers run beside the writer. Switching needs a moment of exclusive
            # access, so only switch when not already in WAL (engine.open does it first).
            _use_wal(conn, busy_timeout_s)
            # FULL: a commit is on disk before the actor acknowledges it.
            conn.execute("PRAGMA synchronous = FULL")
            # After a burst the WAL shrinks back to this size when it restarts.
            conn.execute("PRAGMA journal_size_limit = 67108864")
            # What a deletion frees (a deleted message's overwritten ciphertext, a purge's rows)
            # is zeroed, not left in the page or on the free list (docs/privacy.md).
            conn.execute("PRAGMA secure_delete = ON")
        return conn
    except sqlite3.Error as exc:
        raise ConnectionLost(f"cannot open SQLite database {path}: {exc}") from exc


def _check_json_functions(conn: sqlite3.Connection) -> None:
    """Pages of history are read through SQLite's JSON functions (hub.storage.sqlite.packed),
    built into SQLite since 3.38 and into most earlier builds: without them, say so at startup
    rather than fail every read later."""
    try:
        conn.execute("SELECT json_group_array(json_array(1, hex(x'00'))) AS packed").fetchone()
    except sqlite3.DatabaseError as exc:
        raise ConnectionLost(
            f"SQLite {sqlite3.sqlite_version} lacks the JSON functions the hub needs "
            f"(SQLite 3.38 or later, or a build with JSON1): {exc}"
        ) from exc


def _checkpoint(conn: sqlite3.Connection) -> tuple[int, int]:
    """(pages in the WAL, pages copied): a passive checkpoint, which never waits for the writer
    or readers; a restarting one if the WAL has grown past WAL_RESTART_PAGES."""
    row = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    pages, copied = row["log"], row["checkpointed"]
    if pages >= WAL_RESTART_PAGES:
        row = conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
        pages, copied = row["log"], row["checkpointed"]
    return pages, copied


class SqliteWriter:
    def __init__(self, conn: sqlite3.Connection, engine: SqliteEngine) -> None:
        self._conn = conn
        self._engine = engine
        self._inline_pages = INLINE_CHECKPOINT_PAGES  # what _connect left (SQLite's default)

    async def commit(self, make_op: Callable[[], Op[T]]) -> T:
        inline_pages = 0 if self._engine.offloading() else INLINE_CHECKPOINT_PAGES
        finish = self._engine.take_checkpoint_tail()
        value = await worker.run_sync(self._commit, make_op, inline_pages, finish)
        self._engine.note_commit()
        return value

    def _commit(self, make_op: Callable[[], Op[T]], inline_pages: int, finish: bool) -> T:
        conn = self._conn
        try:
            if inline_pages != self._inline_pages:
                conn.execute(f"PRAGMA wal_autocheckpoint = {inline_pages}")
                self._inline_pages = inline_pages
            conn.execute("BEGIN IMMEDIATE")
            value = _drive(conn, make_op())
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass  # the connection is broken; the caller reconnects
            if isinstance(exc, sqlite3.Error) and _is_unavailable(exc):
                raise ConnectionLost(f"SQLite: {exc}") from exc
            raise
        if finish:
            # The engine's task has just copied the WAL up to where it started; the frames
            # committed since are few. Copying them here, where no commit can land in between,
            # leaves the whole WAL copied, so the next BEGIN starts it over from the beginning.
            # Without this the task never catches up with a busy writer, the WAL grows to
            # WAL_RESTART_PAGES, and the restarting checkpoint blocks the writer, its BEGIN
            # waiting 8-34 ms in the busy handler's sleeps at 5,000/s (docs/performance.md,
            # decision register: "SQLite's writer"). Committed already: a failure here loses
            # nothing and is left to the task.
            try:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            except sqlite3.Error as exc:
                log.warning("storage: WAL checkpoint after commit failed: %s", exc)
        return value

    async def aclose(self) -> None:
        await worker.run_sync(self._conn.close)


class SqliteEngine(Engine):
    """SQLite through the standard library, every statement in a worker thread.

    Checkpoints follow the load. Under light load the writer checkpoints inside the commit that
    fills the WAL past 1,000 pages, as SQLite does by default: that one commit is slower, and no
    checkpoint runs beside the other commits. When batches grow (the writer is behind),
    the writer stops checkpointing and `maintain` does it from a connection of its own. SQLite
    checkpoints without the GIL, so the copying then runs on the machine's other core while the
    writer goes on committing, and keeps up under load where inline checkpoints fell behind.
    Under light load the commits that overlapped the task waited longer, hence inline there
    (docs/performance.md, decision register: "SQLite's writer"). After
    each of the task's checkpoints the writer copies the WAL's tail once (`SqliteWriter._commit`)
    so that the WAL can start over instead of growing to a blocking restart.
    """

    name = "sqlite"
    migrations_dir = Path(__file__).parent / "migrations"

    def __init__(self, path: Path, *, readers: int = 4, busy_timeout_s: float = 5.0) -> None:
        self.path = path
        self._busy_timeout_s = busy_timeout_s
        self.readers = Readers(
            functools.partial(_connect, path, busy_timeout_s, writer=False),
            _run,
            threads=readers,
            max_open=MAX_OPEN_READS,
            busy_timeout_s=busy_timeout_s,
            is_unavailable=_is_unavailable,
        )
        self._committed = trio.Event()
        self._offload_until = -math.inf
        self._checkpoint_tail = False
        self.checkpoints = 0  # the tests count the task's checkpoints

    def append_messages(
        self, messages: Sequence[SealedMessage], now: datetime
    ) -> Op[list[StoredMessage | Exception]]:
        return bulk_append(SqliteAppend(), messages, now)

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = await worker.run_sync(
            functools.partial(_connect, self.path, self._busy_timeout_s, writer=True)
        )
        try:
            await worker.run_sync(_check_json_functions, conn)
        finally:
            conn.close()

    async def aclose(self) -> None:
        self.readers.close()

    async def connect_writer(self) -> SqliteWriter:
        conn = await worker.run_sync(
            functools.partial(_connect, self.path, self._busy_timeout_s, writer=True)
        )
        return SqliteWriter(conn, self)

    def batch_taken(self, size: int) -> None:
        if size >= BUSY_BATCH:
            self._offload_until = trio.current_time() + BUSY_HOLD_S

    def offloading(self) -> bool:
        return trio.current_time() < self._offload_until

    def take_checkpoint_tail(self) -> bool:
        """Whether the writer should copy the WAL's tail after its next commit (once per
        checkpoint of the engine's task)."""
        tail, self._checkpoint_tail = self._checkpoint_tail, False
        return tail

    def note_commit(self) -> None:
        self._committed.set()  # the event of the moment: maintain() replaces it

    async def maintain(self) -> None:
        """While the writer is behind, checkpoint the WAL after its commits, from a worker
        thread with a connection of its own. A failed checkpoint is logged and tried again after
        the next commit: the WAL keeps every committed page until one succeeds."""
        conn: sqlite3.Connection | None = None
        try:
            while True:
                await self._committed.wait()
                self._committed = trio.Event()
                if not self.offloading():
                    continue  # the writer checkpoints inline
                try:
                    if conn is None:
                        conn = await worker.run_sync(
                            functools.partial(
                                _connect, self.path, self._busy_timeout_s, writer=False
                            )
                        )
                    await worker.run_sync(_checkpoint, conn)
                    self.checkpoints += 1
                    self._checkpoint_tail = True
                except (sqlite3.Error, ConnectionLost) as exc:
                    log.warning("storage: WAL checkpoint failed, retried later: %s", exc)
                    if conn is not None:
                        conn.close()
                        conn = None
                await trio.sleep(CHECKPOINT_INTERVAL_S)
        finally:
            if conn is not None:
                conn.close()

    async def scrub(self) -> None:
        """Copy the WAL into the database file and truncate it, so the page images it still
        holds from before a deletion (the old ciphertext) are gone from the disk, as
        `secure_delete` zeroes them in the file. Waits at most SCRUB_WAIT_S for the writer and
        readers; when they stay busy the WAL is overwritten as it restarts, and this says so."""

        def run() -> None:
            conn = _connect(self.path, SCRUB_WAIT_S, writer=False)
            try:
                row = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            finally:
                conn.close()
            if row["busy"]:
                log.info("storage: the WAL stayed busy; it drops the old pages as it restarts")

        try:
            await worker.run_sync(run)
        except (sqlite3.Error, ConnectionLost) as exc:
            log.warning("storage: truncating the WAL after a deletion failed: %s", exc)

    async def read(self, op: Op[T]) -> T:
        return await self.readers.read(op)
