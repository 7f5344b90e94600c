"""Rows of a known shape carried as one JSON value, and turned back into rows by msgspec.

Both engines can hand a query's rows over as one JSON array built by the database: SQLite for
every fetch that states its shape (hub.storage.sqlite.packed: one VM step instead of one per
row, one GIL hand-over instead of many), and both for rows nested in another query's row
(`hub.storage.sql.Nested`: one statement, one round trip, instead of one per query). Each engine
writes the SQL in its own dialect; this module holds what they share: which expression carries
each column, and the typed decoder that turns the JSON back into the dicts a plain fetch returns.

Blobs travel as hex (JSON has no bytes); JSON columns are embedded as JSON.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any, Protocol, Union, get_args

import msgspec

from hub.storage.sql import NestedSpec, RowShape, renumbered


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


class PackedRows:
    """The column expressions of one shape in a dialect (`hex_of` and `json_of` wrap a column
    name for blobs and JSON documents), and the decoder of the array of arrays they build."""

    def __init__(
        self, shape: RowShape, *, hex_of: Callable[[str], str], json_of: Callable[[str], str]
    ) -> None:
        expressions = []
        for name, python_type in shape.columns:
            if _holds(python_type, bytes):
                expressions.append(hex_of(name))
            elif _holds(python_type, dict):
                expressions.append(json_of(name))
            else:
                expressions.append(name)
        self.expressions = ", ".join(expressions)
        self._names = shape.names
        self._blobs = [i for i, (_, t) in enumerate(shape.columns) if _holds(t, bytes)]
        row_type = tuple[tuple(_json_type(t) for _, t in shape.columns)]  # type: ignore[misc]
        self._decoder = msgspec.json.Decoder(list[row_type])

    def rows(self, packed: str | bytes) -> list[dict[str, Any]]:
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


class Dialect(Protocol):
    """How one engine writes packed rows."""

    def packed_rows(self, shape: RowShape) -> PackedRows: ...

    def array_of(self, packed: PackedRows, sql: str, order_by: str) -> str:
        """A scalar subquery: the rows of `sql` as one JSON array (text), sorted by `order_by`,
        `[]` when there are none."""
        ...


class NestedQuery:
    """A `fetchrow` with `Nested` rows, as one statement: the outer query wrapped, each nested
    query a JSON column beside its columns, placeholders numbered outer first (`Query.all_args`
    gives the values in that order)."""

    def __init__(
        self, sql: str, outer_args: int, nested: tuple[NestedSpec, ...], dialect: Dialect
    ) -> None:
        columns = []
        self._packed: list[tuple[str, PackedRows]] = []
        first = outer_args + 1
        for name, nested_sql, placeholders, shape, order_by in nested:
            packed = dialect.packed_rows(shape)
            columns.append(
                f"{dialect.array_of(packed, renumbered(nested_sql, first), order_by)} AS {name}"
            )
            first += placeholders
            self._packed.append((name, packed))
        self.sql = f"SELECT outer_row.*, {', '.join(columns)} FROM ({sql}) AS outer_row"  # noqa: S608 (constant SQL texts)

    def row(self, row: dict[str, Any] | None) -> dict[str, Any] | None:
        """The composed statement's row with each nested column decoded into its rows."""
        if row is not None:
            for name, packed in self._packed:
                row[name] = packed.rows(row[name])
        return row
