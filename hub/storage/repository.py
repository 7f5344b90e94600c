"""The repository: every database operation the hub performs, written once for both engines.

Each function returns an operation (a generator of queries, see `hub.storage.sql`). Writes are
handed to the storage actor, which runs them inside its group-commit transactions; reads go to the
engine's read path. Nothing here knows which engine runs it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID

from hub.errors import Conflict, HubError, Invalid, NotFound
from hub.storage.records import (
    AuditEntry,
    AuditRecord,
    Client,
    Connection,
    EncryptionKey,
    Group,
    Presence,
    ReadReceipt,
    SealedMessage,
    StoredMessage,
    Thread,
    UserProfile,
    row_to,
)
from hub.storage.sql import (
    Nested,
    Op,
    RowShape,
    StatementError,
    execute,
    executemany,
    fetch,
    fetchrow,
    fetchval,
)

# --- batches -------------------------------------------------------------------------------------


def isolated(op: Op[Any]) -> Op[Any]:
    """Run `op` inside a savepoint: its failure is returned (not raised) and undone, so one bad
    request in a group-commit batch fails alone instead of taking the batch down with it. Any
    statement the database refused counts, not only a broken constraint."""
    yield execute("SAVEPOINT request")
    try:
        value = yield from op
    except (HubError, StatementError) as exc:
        yield execute("ROLLBACK TO SAVEPOINT request")
        value = exc
    yield execute("RELEASE SAVEPOINT request")
    return value


# --- identities ----------------------------------------------------------------------------------

INSERT_ORGANIZATION = """
INSERT INTO organizations (id, name, vendor_type, created_at, updated_at)
VALUES ($1, $2, $3, $4, $4)
ON CONFLICT (id) DO NOTHING
"""

UPSERT_USER = """
INSERT INTO user_profiles
    (id, organization_id, username, display_name, role, created_at, updated_at, last_seen_at)
VALUES ($1, $2, $3, $4, $5, $6, $6, $6)
ON CONFLICT (id) DO UPDATE SET
    organization_id = excluded.organization_id,
    username = excluded.username,
    display_name = excluded.display_name,
    role = excluded.role,
    updated_at = excluded.updated_at,
    last_seen_at = excluded.last_seen_at
"""


def upsert_identity(
    *,
    user_id: UUID,
    organization_id: UUID,
    username: str,
    display_name: str,
    role: str,
    now: datetime,
    organization_name: str | None = None,
    vendor_type: str = "other",
) -> Op[UserProfile]:
    """Create or refresh a user and their organization from a verified token's claims.

    The identity provider is external: the first request of a user makes their rows, later ones
    keep name and role current. An existing organization keeps its name unless one is given.
    """
    name = organization_name or f"Organization {str(organization_id)[:8]}"
    yield execute(INSERT_ORGANIZATION, organization_id, name, vendor_type, now)
    if organization_name:
        yield execute(
            "UPDATE organizations SET name = $2, updated_at = $3 WHERE id = $1 AND name <> $2",
            organization_id,
            organization_name,
            now,
        )
    row = yield fetchrow(
        UPSERT_USER + " RETURNING *", user_id, organization_id, username, display_name, role, now
    )
    return row_to(row, UserProfile)


def get_user(user_id: UUID) -> Op[UserProfile]:
    row = yield fetchrow("SELECT * FROM user_profiles WHERE id = $1", user_id)
    if row is None:
        raise NotFound(f"user {user_id} not found")
    return row_to(row, UserProfile)


# --- groups and connections ----------------------------------------------------------------------

_INSERT_GROUP = """
INSERT INTO vendor_connection_groups
    (id, owner_organization_id, client_id, name, description, wedding_date, status, settings,
     created_by, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, 'active', $7, $8, $9, $9)
RETURNING *
"""

_INSERT_CONNECTION = """
INSERT INTO vendor_connections
    (group_id, organization_id, vendor_type, role, status, invited_by, invited_at, joined_at,
     updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $7)
RETURNING *
"""


def create_group(
    *,
    group_id: UUID,
    owner_organization_id: UUID,
    created_by: UUID,
    name: str,
    now: datetime,
    description: str | None = None,
    wedding_date: date | None = None,
    client_id: UUID | None = None,
    settings: dict[str, Any] | None = None,
    owner_vendor_type: str = "other",
) -> Op[Group]:
    """A new group, with its creator's organization as the active `owner` member."""
    row = yield fetchrow(
        _INSERT_GROUP,
        group_id,
        owner_organization_id,
        client_id,
        name,
        description,
        wedding_date,
        settings or {},
        created_by,
        now,
    )
    yield execute(
        _INSERT_CONNECTION,
        group_id,
        owner_organization_id,
        owner_vendor_type,
        "owner",
        "active",
        created_by,
        now,
        now,
    )
    return row_to(row, Group)


def get_group(group_id: UUID) -> Op[Group]:
    row = yield fetchrow("SELECT * FROM vendor_connection_groups WHERE id = $1", group_id)
    if row is None:
        raise NotFound(f"group {group_id} not found")
    return row_to(row, Group)


def invite_organization(
    *,
    group_id: UUID,
    organization_id: UUID,
    vendor_type: str,
    role: str,
    invited_by: UUID,
    now: datetime,
) -> Op[Connection]:
    """Invite an organization; re-inviting one that declined or was removed invites it again."""
    existing = yield fetchrow(
        "SELECT status FROM vendor_connections WHERE group_id = $1 AND organization_id = $2",
        group_id,
        organization_id,
    )
    if existing is not None and existing["status"] in ("invited", "active"):
        raise Invalid(f"organization {organization_id} is already {existing['status']} here")
    if existing is not None:
        row = yield fetchrow(
            """
            UPDATE vendor_connections
            SET vendor_type = $3, role = $4, status = 'invited', invited_by = $5,
                invited_at = $6, joined_at = NULL, updated_at = $6
            WHERE group_id = $1 AND organization_id = $2
            RETURNING *
            """,
            group_id,
            organization_id,
            vendor_type,
            role,
            invited_by,
            now,
        )
    else:
        row = yield fetchrow(
            _INSERT_CONNECTION,
            group_id,
            organization_id,
            vendor_type,
            role,
            "invited",
            invited_by,
            now,
            None,
        )
    return row_to(row, Connection)


def connection_of(group_id: UUID, organization_id: UUID) -> Op[Connection | None]:
    row = yield fetchrow(
        "SELECT * FROM vendor_connections WHERE group_id = $1 AND organization_id = $2",
        group_id,
        organization_id,
    )
    return None if row is None else row_to(row, Connection)


def group_members(group_id: UUID) -> Op[list[Connection]]:
    rows = yield fetch(
        "SELECT * FROM vendor_connections WHERE group_id = $1 ORDER BY invited_at, organization_id",
        group_id,
    )
    return [row_to(row, Connection) for row in rows]


# --- threads -------------------------------------------------------------------------------------

_INSERT_THREAD = """
INSERT INTO messaging_threads
    (id, group_id, title, thread_type, priority, status, created_by, last_seq,
     created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, 'open', $6, 0, $7, $7)
RETURNING *
"""


def create_thread(
    *,
    thread_id: UUID,
    group_id: UUID,
    title: str,
    created_by: UUID,
    now: datetime,
    thread_type: str = "general",
    priority: str = "normal",
) -> Op[Thread]:
    group_status = yield fetchval(
        "SELECT status FROM vendor_connection_groups WHERE id = $1", group_id
    )
    if group_status is None:
        raise NotFound(f"group {group_id} not found")
    if group_status != "active":
        raise Invalid(f"group {group_id} is archived and read-only")
    row = yield fetchrow(
        _INSERT_THREAD, thread_id, group_id, title, thread_type, priority, created_by, now
    )
    return row_to(row, Thread)


def get_thread(thread_id: UUID) -> Op[Thread]:
    row = yield fetchrow("SELECT * FROM messaging_threads WHERE id = $1", thread_id)
    if row is None:
        raise NotFound(f"thread {thread_id} not found")
    return row_to(row, Thread)


# --- messages ------------------------------------------------------------------------------------

MESSAGE_BY_CLIENT_ID = """
SELECT id, thread_id, seq, created_at FROM thread_messages
WHERE thread_id = $1 AND sender_user_id = $2 AND client_msg_id = $3
"""

INSERT_MESSAGE = """
INSERT INTO thread_messages
    (thread_id, seq, sender_user_id, sender_org_id, kind, body_ciphertext, body_nonce,
     key_version, client_msg_id, reply_to, metadata, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
RETURNING id
"""


def writable_thread_error(thread_id: UUID, status: str | None) -> HubError:
    if status is None:
        return NotFound(f"thread {thread_id} not found")
    return Invalid(f"thread {thread_id} is archived and read-only")


def append_message(message: SealedMessage, now: datetime) -> Op[StoredMessage]:
    """Store one message with the next seq of its thread, or return the original when this
    sender already stored this client_msg_id in this thread.

    The seq comes from bumping `messaging_threads.last_seq` inside the write transaction: the
    row lock serializes writers, also across hub processes sharing one PostgreSQL, and a rolled
    back message gives its seq back, so seqs stay gap-free.
    """
    existing = yield fetchrow(
        MESSAGE_BY_CLIENT_ID, message.thread_id, message.sender_user_id, message.client_msg_id
    )
    if existing is not None:
        return row_to({**existing, "duplicate": True}, StoredMessage)
    seq = yield fetchval(
        """
        UPDATE messaging_threads
        SET last_seq = last_seq + 1, last_message_at = $2, updated_at = $2
        WHERE id = $1 AND status <> 'archived'
        RETURNING last_seq
        """,
        message.thread_id,
        now,
    )
    if seq is None:
        status = yield fetchval(
            "SELECT status FROM messaging_threads WHERE id = $1", message.thread_id
        )
        raise writable_thread_error(message.thread_id, status)
    if message.reply_to is not None:
        yield from check_reply_targets(message.thread_id, [message.reply_to])
    message_id = yield fetchval(
        INSERT_MESSAGE,
        message.thread_id,
        seq,
        message.sender_user_id,
        message.sender_org_id,
        message.kind,
        message.body_ciphertext,
        message.body_nonce,
        message.key_version,
        message.client_msg_id,
        message.reply_to,
        message.metadata,
        now,
    )
    return StoredMessage(id=message_id, thread_id=message.thread_id, seq=seq, created_at=now)


def check_reply_targets(thread_id: UUID, reply_to: Sequence[int]) -> Op[None]:
    for target in reply_to:
        found = yield fetchval(
            "SELECT 1 FROM thread_messages WHERE id = $1 AND thread_id = $2", target, thread_id
        )
        if found is None:
            raise Invalid(f"reply_to {target} is not a message of thread {thread_id}")


def append_messages_each(
    messages: Sequence[SealedMessage], now: datetime
) -> Op[list[StoredMessage | Exception]]:
    """Append messages one by one, each in its own savepoint (the SQLite path, and PostgreSQL's
    fallback when its bulk path meets a row that must fail alone)."""
    outcomes: list[StoredMessage | Exception] = []
    for message in messages:
        outcome = yield from isolated(append_message(message, now))
        outcomes.append(outcome)
    return outcomes


# A page of history is the hub's most frequent read; its shape lets SQLite carry it in one piece.
MESSAGE_SHAPE = RowShape(
    (
        ("id", int),
        ("thread_id", UUID),
        ("seq", int),
        ("sender_user_id", UUID),
        ("sender_org_id", UUID),
        ("kind", str),
        ("body_ciphertext", bytes),
        ("body_nonce", bytes),
        ("key_version", int),
        ("client_msg_id", str),
        ("reply_to", int | None),
        ("metadata", dict),
        ("created_at", datetime),
        ("edited_at", datetime | None),
        ("deleted_at", datetime | None),
    )
)
MESSAGE_COLUMNS = ", ".join(MESSAGE_SHAPE.names)


def history(
    thread_id: UUID,
    *,
    after_seq: int | None = None,
    before_seq: int | None = None,
    limit: int = 100,
) -> Nested:
    """Sealed message rows of a thread, oldest first: the `limit` after `after_seq`, the `limit`
    just before `before_seq`, or (neither given) the latest `limit`."""
    select = f"SELECT {MESSAGE_COLUMNS} FROM thread_messages WHERE thread_id = $1"  # noqa: S608 (constant columns)
    if after_seq is not None:
        sql, args = f"{select} AND seq > $2 ORDER BY seq LIMIT $3", (after_seq,)
    elif before_seq is not None:
        sql, args = f"{select} AND seq < $2 ORDER BY seq DESC LIMIT $3", (before_seq,)
    else:
        sql, args = f"{select} ORDER BY seq DESC LIMIT $2", ()
    return Nested("messages", sql, (thread_id, *args, limit), MESSAGE_SHAPE, "seq")


def message_rows(
    thread_id: UUID,
    *,
    after_seq: int | None = None,
    before_seq: int | None = None,
    limit: int = 100,
) -> Op[list[dict[str, Any]]]:
    """Sealed message rows of a thread in seq order: the `limit` just before `before_seq`, else
    the `limit` after `after_seq` (from the first message when neither is given)."""
    if before_seq is not None:
        page = history(thread_id, before_seq=before_seq, limit=limit)
    else:
        page = history(thread_id, after_seq=after_seq or 0, limit=limit)
    rows = yield fetch(page.sql, *page.args, shape=page.shape)
    return rows if before_seq is None else list(reversed(rows))


def history_kept_since(thread_id: UUID, since_seq: int) -> Op[bool]:
    """Whether every message the thread ever had after `since_seq` is still stored, so that a
    replay from there misses none. Seqs are gap-free, so the thread's last_seq says how many
    there were; a thread whose messages retention deleted, even all of them, is not kept.
    (The oldest stored seq alone cannot tell "none deleted" from "all deleted".)"""
    last_seq = yield fetchval("SELECT last_seq FROM messaging_threads WHERE id = $1", thread_id)
    if last_seq is None or last_seq <= since_seq:
        return True  # nothing after since_seq ever existed
    kept = yield fetchval(
        "SELECT count(*) FROM thread_messages WHERE thread_id = $1 AND seq > $2 AND seq <= $3",
        thread_id,
        since_seq,
        last_seq,
    )
    return kept == last_seq - since_seq


# --- read receipts and presence ------------------------------------------------------------------


def mark_read(*, thread_id: UUID, user_id: UUID, seq: int, now: datetime) -> Op[ReadReceipt]:
    """Raise a user's read high-water mark; a lower seq (a late frame) never lowers it."""
    last_seq = yield fetchval("SELECT last_seq FROM messaging_threads WHERE id = $1", thread_id)
    if last_seq is None:
        raise NotFound(f"thread {thread_id} not found")
    if seq < 0 or seq > last_seq:
        raise Invalid(f"seq {seq} is outside this thread's messages (0 to {last_seq})")
    row = yield fetchrow(
        """
        INSERT INTO message_read_receipts (thread_id, user_id, last_read_seq, read_at)
        VALUES ($1, $2, $3, $4)
        ON CONFLICT (thread_id, user_id) DO UPDATE SET
            last_read_seq = CASE
                WHEN excluded.last_read_seq > message_read_receipts.last_read_seq
                THEN excluded.last_read_seq ELSE message_read_receipts.last_read_seq END,
            read_at = excluded.read_at
        RETURNING *
        """,
        thread_id,
        user_id,
        seq,
        now,
    )
    return row_to(row, ReadReceipt)


def read_receipts(thread_id: UUID) -> Op[list[ReadReceipt]]:
    rows = yield fetch(
        "SELECT * FROM message_read_receipts WHERE thread_id = $1 ORDER BY user_id", thread_id
    )
    return [row_to(row, ReadReceipt) for row in rows]


UPSERT_PRESENCE = """
INSERT INTO thread_presence (thread_id, user_id, status, last_seen_at)
VALUES ($1, $2, $3, $4)
ON CONFLICT (thread_id, user_id) DO UPDATE SET
    status = excluded.status, last_seen_at = excluded.last_seen_at
"""


def set_presence(*, thread_id: UUID, user_id: UUID, status: str, now: datetime) -> Op[Presence]:
    row = yield fetchrow(
        UPSERT_PRESENCE + " RETURNING *",
        thread_id,
        user_id,
        status,
        now,
    )
    return row_to(row, Presence)


PRESENCE_SHAPE = RowShape(
    (("thread_id", UUID), ("user_id", UUID), ("status", str), ("last_seen_at", datetime))
)


def presence_rows(thread_id: UUID) -> Nested:
    """Everyone's presence in a thread (offline included), by user id."""
    return Nested(
        "presence",
        f"SELECT {', '.join(PRESENCE_SHAPE.names)} FROM thread_presence WHERE thread_id = $1",  # noqa: S608 (constant columns)
        (thread_id,),
        PRESENCE_SHAPE,
        "user_id",
    )


def thread_presence(thread_id: UUID) -> Op[list[Presence]]:
    presence = presence_rows(thread_id)
    rows = yield fetch(f"{presence.sql} ORDER BY {presence.order_by}", *presence.args)
    return [row_to(row, Presence) for row in rows]


# --- audit ---------------------------------------------------------------------------------------

_INSERT_AUDIT = """
INSERT INTO vendor_communication_audit
    (at, actor_user_id, actor_org_id, action, target_type, target_id, group_id, ip, user_agent,
     details)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
"""


def insert_audit(entries: Sequence[AuditEntry], now: datetime) -> Op[None]:
    yield executemany(
        _INSERT_AUDIT,
        [
            (
                now,
                e.actor_user_id,
                e.actor_org_id,
                e.action,
                e.target_type,
                e.target_id,
                e.group_id,
                e.ip,
                e.user_agent,
                e.details,
            )
            for e in entries
        ],
    )


def audit_rows(
    *,
    group_ids: Sequence[UUID] | None = None,
    actor_user_id: UUID | None = None,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    after_id: int = 0,
    limit: int = 100,
) -> Op[list[AuditRecord]]:
    """Audit rows oldest first, filtered; the filters are fixed SQL with bound values."""
    clauses = ["id > $1"]
    args: list[Any] = [after_id]

    def bind(clause: str, value: Any) -> None:
        args.append(value)
        clauses.append(clause.replace("?", f"${len(args)}"))

    if group_ids is not None:
        if not group_ids:
            return []
        placeholders = []
        for group_id in group_ids:
            args.append(group_id)
            placeholders.append(f"${len(args)}")
        clauses.append(f"group_id IN ({', '.join(placeholders)})")
    if actor_user_id is not None:
        bind("actor_user_id = ?", actor_user_id)
    if action is not None:
        bind("action = ?", action)
    if since is not None:
        bind("at >= ?", since)
    if until is not None:
        bind("at < ?", until)
    args.append(limit)
    rows = yield fetch(
        "SELECT * FROM vendor_communication_audit WHERE "  # noqa: S608 (fixed clauses)
        + " AND ".join(clauses)
        + f" ORDER BY id LIMIT ${len(args)}",
        *args,
    )
    return [row_to(row, AuditRecord) for row in rows]


# --- encryption keys -----------------------------------------------------------------------------


def encryption_keys() -> Op[list[EncryptionKey]]:
    rows = yield fetch("SELECT * FROM message_encryption_keys ORDER BY version")
    return [row_to(row, EncryptionKey) for row in rows]


def add_encryption_key(*, version: int, wrapped_key: bytes, now: datetime) -> Op[EncryptionKey]:
    """Make `version` the active data key and retire the previous one, atomically."""
    yield execute(
        "UPDATE message_encryption_keys SET status = 'retired', retired_at = $1 "
        "WHERE status = 'active'",
        now,
    )
    row = yield fetchrow(
        """
        INSERT INTO message_encryption_keys (version, wrapped_key, algorithm, status, created_at)
        VALUES ($1, $2, 'AES-256-GCM', 'active', $3)
        RETURNING *
        """,
        version,
        wrapped_key,
        now,
    )
    return row_to(row, EncryptionKey)


def count_messages(thread_id: UUID) -> Op[int]:
    value = yield fetchval("SELECT count(*) FROM thread_messages WHERE thread_id = $1", thread_id)
    return int(value)


# --- access --------------------------------------------------------------------------------------


def _reader_position(user: str) -> str:
    """The columns of a reader's position in thread `t`, with their receipt joined as `r`
    (`_receipt_of`); `user` is the placeholder of the reader's id. Seqs are gap-free, so unread
    is the messages after the mark less the reader's own among them (counted from the
    `thread_messages_by_sender` index alone)."""
    return f"""
    coalesce(r.last_read_seq, 0) AS last_read_seq,
    t.last_seq - coalesce(r.last_read_seq, 0) - (SELECT count(*) FROM thread_messages AS m
        WHERE m.thread_id = t.id AND m.sender_user_id = {user}
          AND m.seq > coalesce(r.last_read_seq, 0)) AS unread_count"""  # noqa: S608 (placeholder)


def _receipt_of(user: str) -> str:
    return f"LEFT JOIN message_read_receipts AS r ON r.thread_id = t.id AND r.user_id = {user}"


_ACCESS_ROW = """
    SELECT t.*, g.status AS group_status, g.owner_organization_id,
           c.role AS member_role, c.status AS member_status{reader}
    FROM messaging_threads AS t
    JOIN vendor_connection_groups AS g ON g.id = t.group_id
    LEFT JOIN vendor_connections AS c
           ON c.group_id = g.id AND c.organization_id = $2{receipts}
    WHERE t.id = $1
"""
_THREAD_ACCESS_ROW = _ACCESS_ROW.format(reader="", receipts="")
_THREAD_ACCESS_ROW_AND_READER = _ACCESS_ROW.format(
    reader=f",{_reader_position('$3')}", receipts=f"\n    {_receipt_of('$3')}"
)


def thread_access_row(
    thread_id: UUID,
    organization_id: UUID,
    reader_id: UUID | None = None,
    *,
    nested: tuple[Nested, ...] = (),
) -> Op[dict[str, Any] | None]:
    """A thread with its group's state and the caller organization's membership, in one query:
    everything an access decision about this thread needs. With `reader_id`, also that user's
    read position (`last_read_seq`, `unread_count`, as `thread_reader_state`), so that reading
    the thread needs no query of its own for it; with `nested`, rows of other queries (a page
    of history, presence) in the same statement."""
    if reader_id is None:
        return (yield fetchrow(_THREAD_ACCESS_ROW, thread_id, organization_id, nested=nested))
    return (
        yield fetchrow(
            _THREAD_ACCESS_ROW_AND_READER, thread_id, organization_id, reader_id, nested=nested
        )
    )


# --- REST API: clients, listings with stats, updates ---------------------------------------------
# Added for the REST API (issue 3). Filters are fixed SQL fragments with bound values; lists of
# ids become `IN ($n, ...)` built from placeholders only, as in `audit_rows`.


class _Binder:
    """Collects bound values and hands out their `$n` placeholders, so optional filters can be
    appended as fixed SQL fragments without ever formatting a value into the text."""

    def __init__(self, *initial: Any) -> None:
        self.args: list[Any] = list(initial)

    def __call__(self, value: Any) -> str:
        self.args.append(value)
        return f"${len(self.args)}"

    def many(self, values: Sequence[Any]) -> str:
        return ", ".join(self(value) for value in values)


def ensure_organization(*, organization_id: UUID, now: datetime) -> Op[None]:
    """Make sure an organization row exists: an invitation may name an organization known to the
    identity provider whose users have not signed in here yet."""
    yield execute(
        INSERT_ORGANIZATION,
        organization_id,
        f"Organization {str(organization_id)[:8]}",
        "other",
        now,
    )


def create_client(
    *,
    client_id: UUID,
    organization_id: UUID,
    partner_one_name: str,
    now: datetime,
    partner_two_name: str | None = None,
    email: str | None = None,
    phone: str | None = None,
    wedding_date: date | None = None,
    venue_name: str | None = None,
    venue_address: str | None = None,
) -> Op[Client]:
    row = yield fetchrow(
        """
        INSERT INTO clients
            (id, organization_id, partner_one_name, partner_two_name, email, phone, wedding_date,
             venue_name, venue_address, created_at, updated_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)
        RETURNING *
        """,
        client_id,
        organization_id,
        partner_one_name,
        partner_two_name,
        email,
        phone,
        wedding_date,
        venue_name,
        venue_address,
        now,
    )
    return row_to(row, Client)


def get_client(client_id: UUID) -> Op[Client | None]:
    row = yield fetchrow("SELECT * FROM clients WHERE id = $1", client_id)
    return None if row is None else row_to(row, Client)


def group_ids_of(organization_id: UUID, *, owned_only: bool = False) -> Op[list[UUID]]:
    """Ids of the groups an organization is an active member of (or owns, with `owned_only`).
    Access rules live in `hub.access`; this only answers the question it asks."""
    sql = (
        "SELECT c.group_id FROM vendor_connections AS c "
        "JOIN vendor_connection_groups AS g ON g.id = c.group_id "
        "WHERE c.organization_id = $1 AND c.status = 'active'"
    )
    if owned_only:
        sql += " AND g.owner_organization_id = $1"
    rows = yield fetch(sql + " ORDER BY c.group_id", organization_id)
    return [
        row["group_id"] if isinstance(row["group_id"], UUID) else UUID(row["group_id"])
        for row in rows
    ]


_GROUP_STATS = """
    (SELECT count(*) FROM vendor_connections AS c
        WHERE c.group_id = g.id AND c.status = 'active') AS member_count,
    (SELECT count(*) FROM messaging_threads AS t WHERE t.group_id = g.id) AS thread_count,
    (SELECT CAST(coalesce(sum(t.last_seq), 0) AS bigint) FROM messaging_threads AS t
        WHERE t.group_id = g.id) AS message_count,
    (SELECT max(t.updated_at) FROM messaging_threads AS t
        WHERE t.group_id = g.id) AS last_thread_activity_at,
    (SELECT coalesce(sum(t.last_seq - coalesce(r.last_read_seq, 0) - (
            SELECT count(*) FROM thread_messages AS m
            WHERE m.thread_id = t.id AND m.sender_user_id = $1
              AND m.seq > coalesce(r.last_read_seq, 0))), 0)
        FROM messaging_threads AS t
        LEFT JOIN message_read_receipts AS r ON r.thread_id = t.id AND r.user_id = $1
        WHERE t.group_id = g.id) AS unread_count
"""


def group_rows(
    *,
    user_id: UUID,
    group_ids: Sequence[UUID],
    status: str | None = None,
    wedding_from: date | None = None,
    wedding_to: date | None = None,
    after: tuple[datetime, UUID] | None = None,
    limit: int = 50,
) -> Op[list[dict[str, Any]]]:
    """Groups (newest first) with the caller's stats: members, threads, messages, unread.

    Unread counts the messages of others after the caller's read receipt in each thread.
    `after` is the (created_at, id) of the last row of the previous page.
    """
    if not group_ids:
        return []
    bind = _Binder(user_id)
    clauses = [f"g.id IN ({bind.many(group_ids)})"]
    if status is not None:
        clauses.append(f"g.status = {bind(status)}")
    if wedding_from is not None:
        clauses.append(f"g.wedding_date >= {bind(wedding_from)}")
    if wedding_to is not None:
        clauses.append(f"g.wedding_date <= {bind(wedding_to)}")
    if after is not None:
        created_at, last_id = bind(after[0]), bind(after[1])
        clauses.append(
            f"(g.created_at < {created_at} OR (g.created_at = {created_at} AND g.id < {last_id}))"
        )
    rows = yield fetch(
        f"SELECT g.*, {_GROUP_STATS} FROM vendor_connection_groups AS g "  # noqa: S608 (fixed)
        f"WHERE {' AND '.join(clauses)} "
        f"ORDER BY g.created_at DESC, g.id DESC LIMIT {bind(limit)}",
        *bind.args,
    )
    return rows


def group_activity(group_id: UUID, *, now: datetime) -> Op[dict[str, Any]]:
    """What a group's detail page shows about its pulse: recent message volume, open and urgent
    threads, and who has been talking most in the last 7 days."""
    day_ago, week_ago = now - timedelta(days=1), now - timedelta(days=7)
    counts = yield fetchrow(
        """
        SELECT
            (SELECT count(*) FROM thread_messages AS m
                JOIN messaging_threads AS t ON t.id = m.thread_id
                WHERE t.group_id = $1 AND m.created_at >= $2) AS messages_24h,
            (SELECT count(*) FROM thread_messages AS m
                JOIN messaging_threads AS t ON t.id = m.thread_id
                WHERE t.group_id = $1 AND m.created_at >= $3) AS messages_7d,
            (SELECT count(*) FROM messaging_threads AS t
                WHERE t.group_id = $1 AND t.status = 'open') AS open_threads,
            (SELECT count(*) FROM messaging_threads AS t
                WHERE t.group_id = $1 AND t.status = 'open' AND t.priority = 'urgent')
                AS urgent_threads
        """,
        group_id,
        day_ago,
        week_ago,
    )
    active = yield fetch(
        """
        SELECT m.sender_user_id AS user_id, m.sender_org_id AS organization_id,
               u.display_name, count(*) AS message_count
        FROM thread_messages AS m
        JOIN messaging_threads AS t ON t.id = m.thread_id
        JOIN user_profiles AS u ON u.id = m.sender_user_id
        WHERE t.group_id = $1 AND m.created_at >= $2
        GROUP BY m.sender_user_id, m.sender_org_id, u.display_name
        ORDER BY count(*) DESC, m.sender_user_id
        LIMIT 5
        """,
        group_id,
        week_ago,
    )
    return {**counts, "most_active_members": active}


def member_rows(group_id: UUID) -> Op[list[dict[str, Any]]]:
    """A group's memberships of every status, with each organization's name."""
    rows = yield fetch(
        """
        SELECT c.*, o.name AS organization_name
        FROM vendor_connections AS c JOIN organizations AS o ON o.id = c.organization_id
        WHERE c.group_id = $1
        ORDER BY c.invited_at, c.organization_id
        """,
        group_id,
    )
    return rows


GROUP_UPDATABLE = ("name", "description", "wedding_date", "settings")


def update_group(group_id: UUID, changes: dict[str, Any], now: datetime) -> Op[tuple[Group, Group]]:
    """Apply a partial update; returns (before, after) so the caller can audit what changed."""
    before = yield from get_group(group_id)
    return (yield from _partial_update("group", before, changes, GROUP_UPDATABLE, now))


def archive_group(group_id: UUID, now: datetime) -> Op[Group]:
    yield from get_group(group_id)  # NotFound when it is gone
    return (yield from _archive("group", group_id, now))


def respond_to_invitation(
    *, group_id: UUID, organization_id: UUID, accept: bool, now: datetime
) -> Op[Connection]:
    """Accept or decline a pending invitation; anything but `invited` has nothing to answer."""
    row = yield fetchrow(
        """
        UPDATE vendor_connections
        SET status = $3, updated_at = $4,
            joined_at = CASE WHEN $3 = 'active' THEN $4 ELSE joined_at END
        WHERE group_id = $1 AND organization_id = $2 AND status = 'invited'
        RETURNING *
        """,
        group_id,
        organization_id,
        "active" if accept else "declined",
        now,
    )
    if row is None:
        raise NotFound(f"no pending invitation to group {group_id}")
    return row_to(row, Connection)


def remove_member(*, group_id: UUID, organization_id: UUID, now: datetime) -> Op[Connection]:
    """Remove an invited or active organization; the owner cannot be removed from its group."""
    owner = yield fetchval(
        "SELECT owner_organization_id FROM vendor_connection_groups WHERE id = $1", group_id
    )
    if owner is not None and str(owner) == str(organization_id):
        raise Conflict("the owning organization cannot be removed from its group")
    row = yield fetchrow(
        """
        UPDATE vendor_connections SET status = 'removed', updated_at = $3
        WHERE group_id = $1 AND organization_id = $2 AND status IN ('invited', 'active')
        RETURNING *
        """,
        group_id,
        organization_id,
        now,
    )
    if row is None:
        raise NotFound(f"organization {organization_id} is not a member of group {group_id}")
    return row_to(row, Connection)


_PRIORITY_RANK_SQL = (
    "CASE t.priority WHEN 'urgent' THEN 0 WHEN 'high' THEN 1 WHEN 'normal' THEN 2 ELSE 3 END"
)

_THREAD_STATS = _reader_position("$1")


def thread_rows(
    *,
    user_id: UUID,
    group_ids: Sequence[UUID],
    status: str | None = None,
    priority: str | None = None,
    thread_type: str | None = None,
    title_contains: str | None = None,
    updated_since: datetime | None = None,
    by_priority: bool = False,
    after: tuple[Any, ...] | None = None,
    limit: int = 50,
) -> Op[list[dict[str, Any]]]:
    """Threads of the given groups with the caller's unread count, most recently active first
    (urgent first, then by activity, with `by_priority`). Without a status filter, archived
    threads are left out. `after` is the sort key of the previous page's last row:
    (updated_at, id), or (priority_rank, updated_at, id) with `by_priority`."""
    if not group_ids:
        return []
    bind = _Binder(user_id)
    clauses = [f"t.group_id IN ({bind.many(group_ids)})"]
    if status is not None:
        clauses.append(f"t.status = {bind(status)}")
    else:
        clauses.append("t.status <> 'archived'")
    if priority is not None:
        clauses.append(f"t.priority = {bind(priority)}")
    if thread_type is not None:
        clauses.append(f"t.thread_type = {bind(thread_type)}")
    if title_contains:
        pattern = (
            title_contains.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        )
        clauses.append(f"lower(t.title) LIKE {bind('%' + pattern + '%')} ESCAPE '\\'")
    if updated_since is not None:
        clauses.append(f"t.updated_at >= {bind(updated_since)}")
    if after is not None:
        *rank, updated_at, last_id = after
        at, tid = bind(updated_at), bind(last_id)
        activity = f"(t.updated_at < {at} OR (t.updated_at = {at} AND t.id < {tid}))"
        if by_priority:
            r = bind(rank[0])
            activity = (
                f"({_PRIORITY_RANK_SQL} > {r} OR ({_PRIORITY_RANK_SQL} = {r} AND {activity}))"
            )
        clauses.append(activity)
    order = "t.updated_at DESC, t.id DESC"
    if by_priority:
        order = f"{_PRIORITY_RANK_SQL}, {order}"
    rows = yield fetch(
        f"SELECT t.*, {_PRIORITY_RANK_SQL} AS priority_rank, {_THREAD_STATS} "  # noqa: S608
        "FROM messaging_threads AS t "
        f"{_receipt_of('$1')} "
        f"WHERE {' AND '.join(clauses)} ORDER BY {order} LIMIT {bind(limit)}",
        *bind.args,
    )
    return rows


THREAD_UPDATABLE = ("title", "priority", "status")


def update_thread(
    thread_id: UUID, changes: dict[str, Any], now: datetime
) -> Op[tuple[Thread, Thread]]:
    """Partial update of title, priority and status (open/resolved); returns (before, after).
    Archiving goes through `archive_thread`; an archived thread is read-only."""
    before = yield from get_thread(thread_id)
    return (yield from _partial_update("thread", before, changes, THREAD_UPDATABLE, now))


def archive_thread(thread_id: UUID, now: datetime) -> Op[Thread]:
    yield from get_thread(thread_id)  # NotFound when it is gone
    return (yield from _archive("thread", thread_id, now))


# Groups and threads share their update and archive rules; table names come from here only.
_UPDATABLE_TABLES: dict[str, tuple[str, type]] = {
    "group": ("vendor_connection_groups", Group),
    "thread": ("messaging_threads", Thread),
}


def _partial_update(
    kind: str, before: Any, changes: dict[str, Any], updatable: Sequence[str], now: datetime
) -> Op[tuple[Any, Any]]:
    """Set only the columns named in `updatable` (a constant); an archived row is read-only."""
    table, record = _UPDATABLE_TABLES[kind]
    if before.status == "archived":
        raise Conflict(f"{kind} {before.id} is archived and read-only")
    bind = _Binder(before.id, now)
    sets = [f"{column} = {bind(changes[column])}" for column in updatable if column in changes]
    if not sets:
        return before, before
    row = yield fetchrow(
        f"UPDATE {table} SET "  # noqa: S608 (table and columns from constants)
        + ", ".join([*sets, "updated_at = $2"])
        + " WHERE id = $1 RETURNING *",
        *bind.args,
    )
    return before, row_to(row, record)


def _archive(kind: str, row_id: UUID, now: datetime) -> Op[Any]:
    table, record = _UPDATABLE_TABLES[kind]
    row = yield fetchrow(
        f"UPDATE {table} SET status = 'archived', archived_at = $2, updated_at = $2 "  # noqa: S608
        "WHERE id = $1 AND status <> 'archived' RETURNING *",
        row_id,
        now,
    )
    if row is None:
        raise Conflict(f"{kind} {row_id} is already archived")
    return row_to(row, record)


def thread_reader_state(thread_id: UUID, user_id: UUID) -> Op[dict[str, Any]]:
    """The caller's read position in a thread and how many messages of others follow it."""
    row = yield fetchrow(
        f"SELECT {_reader_position('$2')} FROM messaging_threads AS t "  # noqa: S608 (fixed)
        f"{_receipt_of('$2')} WHERE t.id = $1",
        thread_id,
        user_id,
    )
    return row


def invite_to_group(
    *,
    group_id: UUID,
    organization_id: UUID,
    vendor_type: str,
    role: str,
    invited_by: UUID,
    now: datetime,
) -> Op[Connection]:
    """Invite an organization (creating its row if no user of it has signed in yet); one that is
    already invited or active is a conflict rather than a bad request."""
    status = yield fetchval(
        "SELECT status FROM vendor_connections WHERE group_id = $1 AND organization_id = $2",
        group_id,
        organization_id,
    )
    if status in ("invited", "active"):
        raise Conflict(f"organization {organization_id} is already {status} here")
    yield from ensure_organization(organization_id=organization_id, now=now)
    connection = yield from invite_organization(
        group_id=group_id,
        organization_id=organization_id,
        vendor_type=vendor_type,
        role=role,
        invited_by=invited_by,
        now=now,
    )
    return connection


def member_row(group_id: UUID, organization_id: UUID) -> Op[dict[str, Any] | None]:
    row = yield fetchrow(
        """
        SELECT c.*, o.name AS organization_name
        FROM vendor_connections AS c JOIN organizations AS o ON o.id = c.organization_id
        WHERE c.group_id = $1 AND c.organization_id = $2
        """,
        group_id,
        organization_id,
    )
    return row


# --- realtime (WebSocket layer) ------------------------------------------------------------------


def set_presences(*, thread_id: UUID, statuses: dict[UUID, str], now: datetime) -> Op[None]:
    """Several users' presence in one thread, in one operation (the thread actor coalesces)."""
    for user_id, status in statuses.items():
        yield from set_presence(thread_id=thread_id, user_id=user_id, status=status, now=now)


def thread_ids_of_group(group_id: UUID) -> Op[list[UUID]]:
    rows = yield fetch("SELECT id FROM messaging_threads WHERE group_id = $1 ORDER BY id", group_id)
    return [row["id"] for row in rows]
