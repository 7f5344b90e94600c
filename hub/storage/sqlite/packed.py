"""Rows of a known shape read from SQLite as one JSON value, in one step.

CPython's sqlite3 lets go of the GIL around every row it steps through, and a reader thread
(reads then ran in worker threads) had to win it back from the Trio thread once per row. Under
load that hand-over was what a read cost: with four readers each stepping a 50-message page
while the Trio thread was busy, `bench.http` measured GET /threads/{id} at 5.0 ms of CPU per
request at 350 requests/s offered, against 2.3 ms at 250/s, and the hub fell behind. Packed,
SQLite builds the page itself (`json_group_array` over the query), the read steps once, and
msgspec turns the JSON into typed values in C instead of a Python converter per column.

Blobs travel as hex (JSON has no bytes); JSON columns are embedded as JSON. Row order is the
query's own: SQLite aggregates a subquery with ORDER BY and LIMIT in the order it yields rows,
and the tests of history pages pin that.
"""

from __future__ import annotations

import functools
import types
from typing import Any, Union, get_args

import msgspec

from hub.storage.sql import RowShape


def _json_type(python_type: Any) -> Any:
    """How a column's type travels in the JSON: bytes as hex text, dicts as JSON objects."""
    if isinstance(python_type, types.UnionType):
        return Union[tuple(_json_type(arg) for arg in get_args(python_type))]  # noqa: UP007
    if python_type is bytes:
        return str
    if python_type is dict:
        return dict[str, Any]
    return python_type


def _holds(python_type: Any, kind: type) -> bool:
    """Whether a column of this type holds `kind` values (alone, or `kind | None`)."""
    return python_type is kind or (
        isinstance(python_type, types.UnionType) and kind in get_args(python_type)
    )


class PackedQuery:
    """One query of a given shape, rewritten to return all its rows as one JSON array."""

    def __init__(self, sql: str, shape: RowShape) -> None:
        expressions = []
        for name, python_type in shape.columns:
            if _holds(python_type, bytes):
                expressions.append(f"hex({name})")
            elif _holds(python_type, dict):
                expressions.append(f"json({name})")
            else:
                expressions.append(name)
        self.sql = (
            f"SELECT json_group_array(json_array({', '.join(expressions)})) AS packed "  # noqa: S608 (the shape's constant column names)
            f"FROM ({sql})"
        )
        self._names = shape.names
        self._blobs = [i for i, (_, t) in enumerate(shape.columns) if _holds(t, bytes)]
        row_type = tuple[tuple(_json_type(t) for _, t in shape.columns)]  # type: ignore[misc]
        self._decoder = msgspec.json.Decoder(list[row_type])

    def rows(self, packed: str) -> list[dict[str, Any]]:
        names, blobs = self._names, self._blobs
        out = []
        for values in self._decoder.decode(packed):
            if blobs:
                values = list(values)
                for i in blobs:
                    if values[i] is not None:
                        values[i] = bytes.fromhex(values[i])
            out.append(dict(zip(names, values, strict=True)))
        return out


@functools.lru_cache(maxsize=64)
def packed_query(sql: str, shape: RowShape) -> PackedQuery:
    return PackedQuery(sql, shape)
