"""Rows nested in another query's row (`hub.storage.sql.Nested`), in PostgreSQL's dialect.

Under trio-asyncio each statement costs the Trio thread a pass of asyncio callbacks
(docs/performance.md, decision register: "Packed page reads"), whatever the statement: a
thread page, which was three statements (the access row, the page of history, presence), is
one this way. The JSON travels as text, so the
connection's json codec stays out of it, and `hub.storage.packed` decodes it by the rows' shape.
Timestamps in the JSON are written in the session's time zone: read connections set it to UTC
(`PostgresEngine._connect_reader`), so they decode to the same UTC datetimes asyncpg gives.
"""

from __future__ import annotations

from hub.storage.packed import Dialect

POSTGRES = Dialect(
    row_of=lambda pairs: f"json_build_array({', '.join(e for _, e in pairs)})",
    rows_are="arrays",
    blob_of=lambda name: f"encode({name}, 'hex')",
    blobs_as="hex",
    json_of=lambda name: name,
    array_of=lambda row, sql, order_by: (
        f"(SELECT coalesce(json_agg({row} ORDER BY {order_by}), '[]')::text "  # noqa: S608 (constant SQL texts)
        f"FROM ({sql}) AS nested_rows)"
    ),
)
