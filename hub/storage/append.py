"""Appending a batch of messages in a handful of statements, whatever the batch size.

The algorithm is written once: find client_msg_ids already stored in their threads, lock the
batch's threads and read their last seq (one lookup), hand out the next seqs in arrival order,
insert every new row and bump the threads (one insert). Each engine supplies the few statements
whose syntax differs (`AppendDialect`): PostgreSQL passes arrays through `unnest`, SQLite
expands placeholder lists and uses `executemany`. When some row must fail on its own (a sender
that does not exist, a concurrent twin of a client_msg_id), the bulk insert is rolled back and
every message goes through the one-by-one path instead, so the outcome per message is the same
either way.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

import msgspec

from hub.errors import Invalid
from hub.storage.attachments import link_attachments
from hub.storage.messages import append_messages_each, writable_thread_error
from hub.storage.notifications import notify_message
from hub.storage.records import SealedMessage, StoredMessage, row_to
from hub.storage.sql import Op, StatementError, execute

# What makes a message idempotent: (thread_id, sender_user_id, client_msg_id). A sender may reuse
# a client_msg_id in another thread and gets a new message there (migration 0004).
MessageKey = tuple[UUID, UUID, str]


class AppendDialect(Protocol):
    def lookup(
        self, keys: list[MessageKey], thread_ids: list[UUID]
    ) -> Op[tuple[list[dict], list[dict]]]:
        """Two row lists. First, the rows (id, thread_id, seq, created_at, sender_user_id,
        client_msg_id) already stored under these keys; a superset is fine, the caller matches
        keys exactly. Second, (id, status, last_seq) of these threads, locked against other
        writers until commit."""
        ...

    def reply_targets(self, message_ids: list[int]) -> Op[list[dict]]:
        """(id, thread_id) of these messages."""
        ...

    def insert(
        self, rows: list[tuple[Any, ...]], last_seqs: list[tuple[UUID, int]], now: datetime
    ) -> Op[list[dict]]:
        """Insert rows in INSERT_COLUMNS order and set each thread's last_seq and last activity;
        return (id, thread_id, seq) of each row."""
        ...


INSERT_COLUMNS = (
    "thread_id, seq, sender_user_id, sender_org_id, kind, body_ciphertext, body_nonce, "
    "key_version, client_msg_id, reply_to, metadata, requires_ack"
)

_encode_json = msgspec.json.Encoder().encode


def bulk_append(
    dialect: AppendDialect, messages: Sequence[SealedMessage], now: datetime
) -> Op[list[StoredMessage | Exception]]:
    """The same outcome as `append_messages_each`, message for message, in a few statements.
    When the database refuses any statement of the bulk path (a row that must fail on its own,
    a value it cannot take), the bulk path is undone and every message goes one by one, so the
    refusal reaches only the message that caused it."""
    # The savepoint comes first, before the lookup's thread locks (a rollback to it lets them
    # go; the one-by-one path takes its own): with nothing between it and the transaction's
    # start, PostgreSQL sends it in BEGIN's round trip (hub.storage.postgres.engine).
    yield execute("SAVEPOINT bulk_append")
    try:
        outcomes = yield from _append_together(dialect, messages, now)
    except StatementError:
        yield execute("ROLLBACK TO SAVEPOINT bulk_append")
        yield execute("RELEASE SAVEPOINT bulk_append")
        return (yield from append_messages_each(messages, now))
    yield execute("RELEASE SAVEPOINT bulk_append")
    return outcomes


def _append_together(
    dialect: AppendDialect, messages: Sequence[SealedMessage], now: datetime
) -> Op[list[StoredMessage | Exception]]:
    outcomes: list[Any] = [None] * len(messages)
    existing_rows, thread_rows = yield from dialect.lookup(
        [_key_of(m) for m in messages], sorted({m.thread_id for m in messages})
    )
    existing = {(r["thread_id"], r["sender_user_id"], r["client_msg_id"]): r for r in existing_rows}
    threads = {r["id"]: r for r in thread_rows}
    reply_ids = sorted({m.reply_to for m in messages if m.reply_to is not None})
    reply_threads: dict[int, UUID] = {}
    if reply_ids:
        rows = yield from dialect.reply_targets(reply_ids)
        reply_threads = {r["id"]: r["thread_id"] for r in rows}

    last_seq = {thread_id: row["last_seq"] for thread_id, row in threads.items()}
    first_of: dict[MessageKey, int] = {}
    repeats: list[tuple[int, int]] = []
    inserts: list[tuple[int, SealedMessage, int]] = []
    for index, message in enumerate(messages):
        key = _key_of(message)
        thread = threads.get(message.thread_id)
        if key in existing:
            outcomes[index] = row_to({**existing[key], "duplicate": True}, StoredMessage)
        elif key in first_of:
            repeats.append((index, first_of[key]))
        elif thread is None or thread["status"] == "archived":
            outcomes[index] = writable_thread_error(
                message.thread_id, None if thread is None else thread["status"]
            )
        elif message.reply_to is not None and (
            reply_threads.get(message.reply_to) != message.thread_id
        ):
            outcomes[index] = Invalid(
                f"reply_to {message.reply_to} is not a message of thread {message.thread_id}"
            )
        else:
            last_seq[message.thread_id] += 1
            first_of[key] = index
            inserts.append((index, message, last_seq[message.thread_id]))

    if inserts:
        rows = yield from dialect.insert(
            [
                (
                    m.thread_id,
                    seq,
                    m.sender_user_id,
                    m.sender_org_id,
                    m.kind,
                    m.body_ciphertext,
                    m.body_nonce,
                    m.key_version,
                    m.client_msg_id,
                    m.reply_to,
                    _encode_json(m.metadata).decode(),
                    m.requires_ack,
                )
                for _, m, seq in inserts
            ],
            [(t, last_seq[t]) for t in sorted({m.thread_id for _, m, _ in inserts})],
            now,
        )
        ids = {(r["thread_id"], r["seq"]): r["id"] for r in rows}
        for _, message, seq in inserts:
            if message.attachment_ids:
                yield from _link(ids[(message.thread_id, seq)], message)
        for index, message, seq in inserts:
            stored = StoredMessage(
                id=ids[(message.thread_id, seq)],
                thread_id=message.thread_id,
                seq=seq,
                created_at=now,
            )
            if message.notifies:
                yield from notify_message(message, stored)
            outcomes[index] = stored

    for index, first in repeats:
        original = outcomes[first]
        if isinstance(original, StoredMessage):
            outcomes[index] = msgspec.structs.replace(original, duplicate=True)
        else:
            outcomes[index] = original
    return outcomes


def _link(message_id: int, message: SealedMessage) -> Op[None]:
    """Link a message's uploads; a refusal must fail that message alone, so the bulk path is
    abandoned for the one-by-one path, where it does."""
    try:
        yield from link_attachments(
            message_id, message.thread_id, message.sender_user_id, message.attachment_ids
        )
    except Invalid as refusal:
        raise StatementError(refusal.message, bad_input=True) from None


def _key_of(message: SealedMessage) -> MessageKey:
    return (message.thread_id, message.sender_user_id, message.client_msg_id)
