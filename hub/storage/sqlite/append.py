"""SQLite's statements for the bulk append: expanded placeholder lists, many rows a statement.

No row locks are needed: the storage actor's BEGIN IMMEDIATE holds SQLite's single write lock,
so no other writer (in this process or another) can touch the threads until commit. For the same
reason the new ids are exactly those above the largest id seen before the insert.

Rows go in as multi-row statements rather than `executemany`. CPython's sqlite3 lets go of the
GIL for every step of a statement, and `executemany` steps once per row: a batch of 1,000
messages asked for the GIL back 1,000 times, each time waiting behind the busy Trio thread.
A statement of `_ROWS_PER_INSERT` rows asks once. A failing row fails its whole statement,
which changes nothing for the caller: it rolls the whole bulk insert back either way."""

from __future__ import annotations

import functools
from datetime import datetime
from itertools import chain
from typing import Any
from uuid import UUID

from hub.storage.append import INSERT_COLUMNS, MessageKey
from hub.storage.sql import Op, execute, fetch, fetchval
from hub.storage.sqlite.types import timestamp
from hub.storage.sqltext import placeholders

_MAX_ID = "SELECT coalesce(max(id), 0) FROM thread_messages"
_INSERT_WIDTH = 13  # INSERT_COLUMNS and created_at
# 128 rows of 13 values stay far below SQLite's 32,766 bound variables, and the few statement
# texts (128 rows, and each shorter remainder) stay in the connection's statement cache.
_ROWS_PER_INSERT = 128
_ROWS_PER_BUMP = 500
_KEYS_PER_LOOKUP = 500  # 3 values a key


@functools.lru_cache(maxsize=_ROWS_PER_INSERT)
def _insert(rows: int) -> str:
    values = ", ".join(
        f"({placeholders(_INSERT_WIDTH, 1 + i * _INSERT_WIDTH)})" for i in range(rows)
    )
    return f"INSERT INTO thread_messages ({INSERT_COLUMNS}, created_at) VALUES {values}"  # noqa: S608


@functools.lru_cache(maxsize=_KEYS_PER_LOOKUP)
def _existing(keys: int) -> str:
    # A join against the keys as a VALUES list probes the unique index once per key. Three IN
    # lists would probe every combination of their values, and `(a, b, c) IN (VALUES ...)`
    # scans the table (SQLite 3.40's plans).
    values = ", ".join(f"({placeholders(3, 1 + 3 * i)})" for i in range(keys))
    return (
        "SELECT m.id, m.thread_id, m.seq, m.created_at, m.sender_user_id, m.client_msg_id "  # noqa: S608
        f"FROM (VALUES {values}) AS k JOIN thread_messages AS m ON m.thread_id = k.column1 "
        "AND m.sender_user_id = k.column2 AND m.client_msg_id = k.column3"
    )


@functools.lru_cache(maxsize=64)
def _bump(threads: int) -> str:
    # UPDATE ... FROM (SQLite 3.33): every thread of the batch in one statement.
    values = ", ".join(f"(${2 + 2 * i}, ${3 + 2 * i})" for i in range(threads))
    return (
        "UPDATE messaging_threads SET last_seq = v.column2, last_message_at = $1, "  # noqa: S608
        f"updated_at = $1 FROM (VALUES {values}) AS v WHERE messaging_threads.id = v.column1"
    )


def _chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


class SqliteAppend:
    def lookup(
        self, keys: list[MessageKey], thread_ids: list[UUID]
    ) -> Op[tuple[list[dict], list[dict]]]:
        # Statements cost no round trip here; two plain ones read better than one union.
        existing = yield from self._existing(keys)
        threads = yield from self._threads(thread_ids)
        return existing, threads

    def _existing(self, keys: list[MessageKey]) -> Op[list[dict]]:
        rows: list[dict] = []
        for chunk in _chunks(sorted(set(keys)), _KEYS_PER_LOOKUP):
            rows += yield fetch(_existing(len(chunk)), *chain.from_iterable(chunk))
        return rows

    def _threads(self, thread_ids: list[UUID]) -> Op[list[dict]]:
        return (
            yield fetch(
                "SELECT id, status, last_seq FROM messaging_threads "  # noqa: S608
                f"WHERE id IN ({placeholders(len(thread_ids))})",
                *thread_ids,
            )
        )

    def reply_targets(self, message_ids: list[int]) -> Op[list[dict]]:
        return (
            yield fetch(
                "SELECT id, thread_id FROM thread_messages "  # noqa: S608
                f"WHERE id IN ({placeholders(len(message_ids))})",
                *message_ids,
            )
        )

    def insert(
        self, rows: list[tuple[Any, ...]], last_seqs: list[tuple[UUID, int]], now: datetime
    ) -> Op[list[dict]]:
        before = yield fetchval(_MAX_ID)
        stamp = timestamp(now)  # formatted once for the whole batch
        for chunk in _chunks(rows, _ROWS_PER_INSERT):
            yield execute(_insert(len(chunk)), *chain.from_iterable((*r, stamp) for r in chunk))
        after = yield fetchval(_MAX_ID)
        for chunk in _chunks(last_seqs, _ROWS_PER_BUMP):
            yield execute(_bump(len(chunk)), stamp, *chain.from_iterable(chunk))
        if after - before == len(rows):
            # Under the write lock, AUTOINCREMENT hands out consecutive ids in insert order.
            return [
                {"id": before + 1 + i, "thread_id": row[0], "seq": row[1]}
                for i, row in enumerate(rows)
            ]
        return (yield fetch("SELECT id, thread_id, seq FROM thread_messages WHERE id > $1", before))
