"""Rows of a known shape read from SQLite as one JSON value, in one step.

CPython's sqlite3 lets go of the GIL around every row it steps through, and a reader thread
(reads then ran in worker threads) had to win it back from the Trio thread once per row. Under
load that hand-over was what a read cost: with four readers each stepping a 50-message page
while the Trio thread was busy, `bench.http` measured GET /threads/{id} at 5.0 ms of CPU per
request at 350 requests/s offered, against 2.3 ms at 250/s, and the hub fell behind. Packed,
SQLite builds the page itself (`json_group_array` over the query), the read steps once, and
msgspec turns the JSON into typed values in C instead of a Python converter per column.

The same JSON carries rows nested in another query's row (`NestedQuery`). Blobs travel as hex
(JSON has no bytes); JSON columns are embedded as JSON (`hub.storage.packed`). Row order is the
query's own: SQLite aggregates a subquery with ORDER BY and LIMIT in the order it yields rows,
and the tests of history pages pin that.
"""

from __future__ import annotations

import functools
from typing import Any

from hub.storage.packed import NestedQuery, PackedRows
from hub.storage.sql import NestedSpec, RowShape


@functools.lru_cache(maxsize=64)
def _packed_rows(shape: RowShape) -> PackedRows:
    return PackedRows(
        shape,
        object_of=lambda pairs: f"json_object({pairs})",
        blob_of=lambda name: f"hex({name})",
        blobs_as="hex",
        json_of=lambda name: f"json({name})",
    )


class PackedQuery:
    """One query of a given shape, rewritten to return all its rows as one JSON array."""

    def __init__(self, sql: str, shape: RowShape) -> None:
        self._packed = _packed_rows(shape)
        self.sql = (
            f"SELECT json_group_array({self._packed.expression}) AS packed "  # noqa: S608 (the shape's constant column names)
            f"FROM ({sql})"
        )

    def rows(self, packed: str) -> list[dict[str, Any]]:
        return self._packed.rows(packed)


@functools.lru_cache(maxsize=64)
def packed_query(sql: str, shape: RowShape) -> PackedQuery:
    return PackedQuery(sql, shape)


class _SQLite:
    def packed_rows(self, shape: RowShape) -> PackedRows:
        return _packed_rows(shape)

    def array_of(self, packed: PackedRows, sql: str, order_by: str) -> str:
        # SQLite aggregates rows in the order its subquery yields them.
        return (
            f"(SELECT json_group_array({packed.expression}) "  # noqa: S608 (constant SQL texts)
            f"FROM (SELECT * FROM ({sql}) ORDER BY {order_by}))"
        )


@functools.lru_cache(maxsize=64)
def nested_query(sql: str, outer_args: int, nested: tuple[NestedSpec, ...]) -> NestedQuery:
    return NestedQuery(sql, outer_args, nested, _SQLite())
