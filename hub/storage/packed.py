"""Rows of a known shape carried as one JSON value, and turned back into rows by msgspec.

Both engines can hand a query's rows over as one JSON array built by the database: SQLite for
every fetch that states its shape (hub.storage.sqlite.packed: one VM step instead of one per
row, one GIL hand-over instead of many), and both for rows nested in another query's row
(`hub.storage.sql.Nested`: one statement, one round trip, instead of one per query). Each engine
writes the SQL in its own dialect; this module holds what they share: which expression carries
each column, and the typed decoder that turns the JSON back into the dicts a plain fetch returns.

Each row travels as a JSON object, blobs as hex or base64 text (JSON has no bytes), JSON columns
embedded as JSON.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any, Literal, Protocol, TypedDict, Union, get_args

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


class PackedRows:
    """One JSON object per row of a shape, in a dialect, and the decoder of an array of them.

    `object_of` writes the dialect's JSON object constructor around `'name', expression` pairs;
    `blob_of` wraps a blob column in its text encoding, `blobs_as` (SQLite has only hex;
    PostgreSQL's base64 msgspec decodes to bytes in C); `json_of` a JSON document column.
    msgspec decodes the objects straight into dicts with typed values (a TypedDict of the
    shape): no Python code per row but for hex blobs."""

    def __init__(
        self,
        shape: RowShape,
        *,
        object_of: Callable[[str], str],
        blob_of: Callable[[str], str],
        blobs_as: BlobText,
        json_of: Callable[[str], str],
    ) -> None:
        pairs = []
        for name, python_type in shape.columns:
            if _holds(python_type, bytes):
                expression = blob_of(name)
            elif _holds(python_type, dict):
                expression = json_of(name)
            else:
                expression = name
            pairs.append(f"'{name}', {expression}")
        self.expression = object_of(", ".join(pairs))
        row_type = TypedDict(  # type: ignore[misc]
            "PackedRow", {name: _json_type(t, blobs_as) for name, t in shape.columns}
        )
        self._decoder = msgspec.json.Decoder(list[row_type])  # type: ignore[valid-type]
        self._hex_blobs = tuple(
            name for name, t in shape.columns if blobs_as == "hex" and _holds(t, bytes)
        )

    def rows(self, packed: str | bytes) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self._decoder.decode(packed)
        for name in self._hex_blobs:
            for row in rows:
                value = row[name]
                if value is not None:
                    row[name] = bytes.fromhex(value)
        return rows


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
