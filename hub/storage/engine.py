"""What an engine must provide to the storage actor and the read path.

An engine holds only what differs between SQLite and PostgreSQL: how to connect, how to run a
query, how errors look, its migrations folder, and (PostgreSQL) a bulk path for messages. The
operations themselves live once, one module per domain (`hub.storage.groups`,
`hub.storage.messages`, ...; see docs/storage.md). How one is chosen and opened is
`hub.storage.opening`, apart from this interface, which both engines import.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

import trio

from hub.storage.records import SealedMessage, StoredMessage
from hub.storage.sql import Op, Query, StatementError

T = TypeVar("T")


class Writer(Protocol):
    """One write connection of the storage actor (one per lane)."""

    async def commit(self, make_op: Callable[[], Op[T]]) -> T:
        """Run the operation in one transaction and commit it; raise ConnectionLost if the
        database failed (the transaction is then rolled back or its outcome unknown)."""
        ...

    async def aclose(self) -> None: ...


class Engine(ABC):
    name: str
    migrations_dir: Path
    # Serializes concurrent `hub migrate` runs on one database; None where the engine's
    # write lock already does.
    migration_lock_sql: str | None = None
    # Whether several write connections can commit at the same time. PostgreSQL's can, on
    # disjoint rows; SQLite has one write lock per database, so a second writer would only wait.
    parallel_writers: bool = False

    @abstractmethod
    async def open(self) -> None:
        """Open the read path; raise ConnectionLost if the database cannot be reached."""

    @abstractmethod
    async def aclose(self) -> None: ...

    @abstractmethod
    async def connect_writer(self) -> Writer: ...

    def batch_taken(self, size: int) -> None:
        """The storage actor took a batch of this many requests: a sign of load an engine may
        adapt to. Most need not."""
        return

    async def maintain(self) -> None:
        """Background upkeep while the storage actor runs (cancelled when it stops); an engine
        that needs none waits."""
        await trio.sleep_forever()

    async def scrub(self) -> None:
        """After a deletion: leave no copy of what was overwritten in the engine's own files
        where it can help (SQLite's WAL); nothing by default (docs/privacy.md says where
        PostgreSQL keeps old row versions)."""
        return

    async def scrub_keys(self) -> None:
        """After data keys were destroyed: leave no old copy of them in the engine's table
        files where it can help (PostgreSQL's dead row versions); SQLite's secure_delete and
        `scrub` cover it there."""
        return

    @abstractmethod
    async def read(self, op: Op[T]) -> T:
        """Run a read-only operation on the read path, which never waits for the writer."""

    @abstractmethod
    def append_messages(
        self, messages: Sequence[SealedMessage], now: datetime
    ) -> Op[list[StoredMessage | Exception]]:
        """Append a run of messages; one outcome (StoredMessage or error) per message."""


class Stepper:
    """Steps an operation: hands out its next query and feeds back the result or the error.

    Both engines' drivers use it, so the only thing they differ in is how a query runs.
    """

    def __init__(self, op: Op[Any]) -> None:
        self._op = op
        self.result: Any = None

    def advance(self, value: Any = None, error: StatementError | None = None) -> Query | None:
        try:
            if error is not None:
                return self._op.throw(error)
            return self._op.send(value)
        except StopIteration as stop:
            self.result = stop.value
            return None


def script_statements(script: str) -> list[str]:
    """Split a migration script into statements at semicolons that end a line."""
    statements, current = [], []
    for line in script.splitlines():
        if line.strip().startswith("--"):
            continue
        current.append(line)
        if line.rstrip().endswith(";"):
            statements.append("\n".join(current).strip())
            current = []
    tail = "\n".join(current).strip()
    if tail:
        statements.append(tail)
    return [s for s in statements if s]
