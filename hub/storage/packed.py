"""Rows of a known shape carried as one JSON value, and turned back into rows by msgspec.

Both engines can hand a query's rows over as one JSON array built by the database: SQLite for
every fetch that states its shape (hub.storage.sqlite.packed: one VM step instead of one per
row, one GIL hand-over instead of many), and both for rows nested in another query's row
(`hub.storage.sql.Nested`: one statement, one round trip, instead of one per query). Each engine
writes the SQL in its own dialect; this module holds what they share: which expression carries
each column, and the typed decoder that turns the JSON back into the dicts a plain fetch returns.

Each row travels as a JSON object or array (`Dialect.rows_are`), blobs as hex or base64 text
(JSON has no bytes), JSON columns embedded as JSON.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypedDict, Union, get_args

import msgspec

from hub.storage.sql import NestedSpec, RowShape, renumbered

BlobText = Literal["hex", "base64"]


def _json_type(python_type: Any, blobs_as: BlobText) -> Any:
    """How a column's type travels in the JSON: bytes as text (base64 msgspec decodes itself),
    dicts as JSON objects."""
    if isinstance(python_type, types.UnionType):
        return Union[tuple(_json_type(arg, blobs_as) for arg in get_args(python_type))]  # noqa: UP007
    if python_type is bytes:
        return bytes if blobs_as == "base64" else str
    if python_type is dict:
        return dict[str, Any]
    return python_type


def _holds(python_type: Any, kind: type) -> bool:
    """Whether a column of this type holds `kind` values (alone, or `kind | None`)."""
    return python_type is kind or (
        isinstance(python_type, types.UnionType) and kind in get_args(python_type)
    )


@dataclass(frozen=True, eq=False)
class Dialect:
    """How one engine writes packed rows. `row_of` builds one row's JSON from its `(name,
    expression)` pairs, as an object or an array (`rows_are`); `blob_of` wraps a blob column in
    its text encoding, `blobs_as` (base64 msgspec decodes to bytes in C; hex is converted per
    value); `json_of` a JSON document column; `array_of(row, sql, order_by)` is a scalar
    subquery aggregating `row` over the rows of `sql`, sorted by `order_by` (an ORDER BY list
    of the rows' columns), into one JSON array (text, `[]` when none). One instance per engine,
    so caches keyed by it stay small."""

    row_of: Callable[[list[tuple[str, str]]], str]
    rows_are: Literal["objects", "arrays"]
    blob_of: Callable[[str], str]
    blobs_as: BlobText
    json_of: Callable[[str], str]
    array_of: Callable[[str, str, str], str]
    # A boolean column as a JSON boolean (SQLite keeps booleans as 0 and 1).
    bool_of: Callable[[str], str] = lambda name: name


class PackedRows:
    """One JSON value per row of a shape, in a dialect (`expression`), and the decoder of an
    array of them. Objects decode straight into dicts with typed values (a TypedDict of the
    shape), with no Python code per row but for hex blobs; arrays are cheaper for PostgreSQL to
    build than objects (docs/performance.md, decision register: "Packed page reads") and become
    dicts by name here."""

    def __init__(self, shape: RowShape, dialect: Dialect) -> None:
        pairs = []
        for name, python_type in shape.columns:
            if _holds(python_type, bytes):
                expression = dialect.blob_of(name)
            elif _holds(python_type, dict):
                expression = dialect.json_of(name)
            elif _holds(python_type, bool):
                expression = dialect.bool_of(name)
            else:
                expression = name
            pairs.append((name, expression))
        self.expression = dialect.row_of(pairs)
        blobs_as = dialect.blobs_as
        types_ = {name: _json_type(t, blobs_as) for name, t in shape.columns}
        self._names: tuple[str, ...] | None = None
        if dialect.rows_are == "objects":
            row_type: Any = TypedDict("PackedRow", types_)  # type: ignore[operator]
        else:
            row_type = tuple[tuple(types_.values())]  # type: ignore[misc]
            self._names = shape.names
        self._decoder = msgspec.json.Decoder(list[row_type])
        self._hex_blobs = tuple(
            name for name, t in shape.columns if blobs_as == "hex" and _holds(t, bytes)
        )

    def rows(self, packed: str | bytes) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self._decoder.decode(packed)
        if self._names is not None:
            names = self._names
            rows = [dict(zip(names, values, strict=True)) for values in rows]
        for name in self._hex_blobs:
            for row in rows:
                value = row[name]
                if value is not None:
                    row[name] = bytes.fromhex(value)
        return rows


@functools.lru_cache(maxsize=64)
def packed_rows(shape: RowShape, dialect: Dialect) -> PackedRows:
    return PackedRows(shape, dialect)


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
            packed = packed_rows(shape, dialect)
            array = dialect.array_of(packed.expression, renumbered(nested_sql, first), order_by)
            columns.append(f"{array} AS {name}")
            first += placeholders
            self._packed.append((name, packed))
        self.sql = f"SELECT outer_row.*, {', '.join(columns)} FROM ({sql}) AS outer_row"  # noqa: S608 (constant SQL texts)

    def row(self, row: dict[str, Any] | None) -> dict[str, Any] | None:
        """The composed statement's row with each nested column decoded into its rows."""
        if row is not None:
            for name, packed in self._packed:
                row[name] = packed.rows(row[name])
        return row


@functools.lru_cache(maxsize=64)
def nested_query(
    sql: str, outer_args: int, nested: tuple[NestedSpec, ...], dialect: Dialect
) -> NestedQuery:
    return NestedQuery(sql, outer_args, nested, dialect)
