"""Rows of a known shape read from SQLite as one JSON value, in one step.

CPython's sqlite3 lets go of the GIL around every row it steps through, and a reader thread
(reads then ran in worker threads) had to win it back from the Trio thread once per row. Under
load that hand-over was what a read cost: with four readers each stepping a 50-message page
while the Trio thread was busy, GET /threads/{id} cost twice the CPU per request and the hub fell
behind (docs/performance.md, decision register: "Packed page reads"). Packed,
SQLite builds the page itself (`json_group_array` over the query), the read steps once, and
msgspec turns the JSON into typed values in C instead of a Python converter per column.

The same JSON carries rows nested in another query's row (`hub.storage.packed.NestedQuery`).
Each row is a JSON object, blobs in hex (SQLite has no base64), JSON columns embedded as JSON
(`SQLITE`, the dialect `hub.storage.packed` composes with). Row order is the query's own: SQLite
aggregates a subquery with ORDER BY and LIMIT in the order it yields rows, and the tests of
history pages pin that.
"""

from __future__ import annotations

import functools
from typing import Any

from hub.storage.packed import Dialect, packed_rows
from hub.storage.sql import RowShape

SQLITE = Dialect(
    row_of=lambda pairs: "json_object(" + ", ".join(f"'{n}', {e}" for n, e in pairs) + ")",
    rows_are="objects",
    blob_of=lambda name: f"hex({name})",
    blobs_as="hex",
    json_of=lambda name: f"json({name})",
    # SQLite aggregates rows in the order its subquery yields them.
    array_of=lambda row, sql, order_by: (
        f"(SELECT json_group_array({row}) FROM (SELECT * FROM ({sql}) ORDER BY {order_by}))"  # noqa: S608 (constant SQL texts)
    ),
    bool_of=lambda name: f"json(CASE WHEN {name} THEN 'true' ELSE 'false' END)",
)


class PackedQuery:
    """One query of a given shape, rewritten to return all its rows as one JSON array."""

    def __init__(self, sql: str, shape: RowShape) -> None:
        self._packed = packed_rows(shape, SQLITE)
        self.sql = (
            f"SELECT json_group_array({self._packed.expression}) AS packed "  # noqa: S608 (the shape's constant column names)
            f"FROM ({sql})"
        )

    def rows(self, packed: str) -> list[dict[str, Any]]:
        return self._packed.rows(packed)


@functools.lru_cache(maxsize=64)
def packed_query(sql: str, shape: RowShape) -> PackedQuery:
    return PackedQuery(sql, shape)
