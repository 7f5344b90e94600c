"""Database operations as sans-IO generators.

Every storage operation is written once, as a generator that yields `Query` values and receives
their results (or has the database's error thrown in). Each engine drives the same generator its
own way: SQLite runs a whole operation, or a whole group-commit batch, in one worker-thread hop;
PostgreSQL drives it on the asyncio side, awaiting each query through asyncpg, in one crossing from
Trio per operation (`hub.storage.postgres.connection`). Queries use `$1` placeholders; the SQLite
engine rewrites them to `?1` once per statement text.
"""

from __future__ import annotations

import re
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

T = TypeVar("T")
Mode = Literal["execute", "executemany", "fetch", "fetchrow", "fetchval", "script"]


@dataclass(frozen=True, slots=True)
class RowShape:
    """The columns a fetch returns, by name and Python type (UUID, int, str, bytes, datetime,
    dict, or one of them or None). A fetch that states its shape may be carried by the engine in
    one piece: SQLite's engine reads such rows as one JSON value, one step instead of one per
    row, decoded by msgspec (see `hub.storage.sqlite.packed`). The caller gets the same dicts
    either way."""

    columns: tuple[tuple[str, Any], ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)


@dataclass(frozen=True, slots=True)
class Nested:
    """Another query's rows, carried in one column (`name`) of a `fetchrow`'s row as a list of
    dicts, sorted by `order_by` (columns of `shape`, as an ORDER BY list: `seq`, or
    `last_read_seq DESC, user_id`). The engine makes one statement of both,
    so the rows come from the row's own snapshot and round trip (a thread page on PostgreSQL
    was three round trips, each a cost to the Trio thread: docs/performance.md, decision
    register: "Packed page reads"). The outer query decides
    whether there is a row at all: without one, the nested queries are not run. `sql` numbers
    its placeholders from $1 and `args` fill them; the engine renumbers them after the outer
    query's."""

    name: str
    sql: str
    args: tuple[Any, ...]
    shape: RowShape
    order_by: str

    @property
    def spec(self) -> NestedSpec:
        """What the composed statement depends on (not the values), to cache it by."""
        return (self.name, self.sql, len(self.args), self.shape, self.order_by)


# (name, sql, number of placeholders, shape, order_by) of a `Nested`.
NestedSpec = tuple[str, str, int, RowShape, str]

_PLACEHOLDER = re.compile(r"\$(\d+)")


def renumbered(sql: str, first: int) -> str:
    """`sql` with its placeholders $1, $2, ... moved to $first, $first+1, ..."""
    return _PLACEHOLDER.sub(lambda m: f"${int(m.group(1)) + first - 1}", sql)


@dataclass(frozen=True, slots=True)
class Query:
    sql: str
    args: tuple[Any, ...]
    mode: Mode
    shape: RowShape | None = None
    nested: tuple[Nested, ...] = ()

    @property
    def all_args(self) -> tuple[Any, ...]:
        """The outer query's arguments, then each nested query's, in the composed numbering."""
        if not self.nested:
            return self.args
        return self.args + tuple(arg for n in self.nested for arg in n.args)


# An operation: yields queries, receives their results, returns T.
Op = Generator[Query, Any, T]


def execute(sql: str, *args: Any) -> Query:
    return Query(sql, args, "execute")


def executemany(sql: str, rows: list[tuple[Any, ...]]) -> Query:
    return Query(sql, (rows,), "executemany")


def fetch(sql: str, *args: Any, shape: RowShape | None = None) -> Query:
    """Rows as a list of dicts. `shape`, when given, names every column the query selects, in
    order, with its type."""
    return Query(sql, args, "fetch", shape)


def fetchrow(sql: str, *args: Any, nested: tuple[Nested, ...] = ()) -> Query:
    """The first row as a dict, or None; with `nested`, each as one more column of the row."""
    return Query(sql, args, "fetchrow", nested=nested)


def fetchval(sql: str, *args: Any) -> Query:
    """The first column of the first row, or None."""
    return Query(sql, args, "fetchval")


def script(sql: str) -> Query:
    """Several statements (a migration), run in order inside the current transaction."""
    return Query(sql, (), "script")


class StatementError(Exception):
    """The database refused one statement, not the connection: a value it cannot take (an
    integer beyond bigint, U+0000 in text), or any other error that leaves the connection
    usable. Engines translate their driver's errors into this and throw it into the operation,
    so the storage actor can fail the one request that sent it, never its batch neighbours.
    `bad_input` is true when the values were at fault (the caller hears `invalid`); otherwise it
    is the hub's own fault (`internal`)."""

    def __init__(self, message: str, *, bad_input: bool = False) -> None:
        super().__init__(message)
        self.bad_input = bad_input


class IntegrityError(StatementError):
    """A constraint refused a row. Engines translate their driver's errors into this, so an
    operation can catch it (for example to resolve a duplicate) without knowing the engine."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message, bad_input=True)
        self.kind = kind  # 'unique', 'foreign_key', 'check' or 'not_null'


class ConnectionLost(Exception):
    """The engine's connection failed; the whole transaction is gone and must not be trusted."""
