"""The repository: every database operation the hub performs, written once for both engines.

Each function returns an operation (a generator of queries, see `hub.storage.sql`). Writes are
handed to the storage actor, which runs them inside its group-commit transactions; reads go to the
engine's read path. Nothing here knows which engine runs it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any
from uuid import UUID

from hub.errors import HubError, Invalid, NotFound
from hub.storage.records import (
    AuditEntry,
    AuditRecord,
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
from hub.storage.sql import IntegrityError, Op, execute, executemany, fetch, fetchrow, fetchval

# --- batches -------------------------------------------------------------------------------------


def isolated(op: Op[Any]) -> Op[Any]:
    """Run `op` inside a savepoint: its failure is returned (not raised) and undone, so one bad
    request in a group-commit batch fails alone instead of taking the batch down with it."""
    yield execute("SAVEPOINT request")
    try:
        value = yield from op
    except (HubError, IntegrityError) as exc:
        yield execute("ROLLBACK TO SAVEPOINT request")
        value = exc
    yield execute("RELEASE SAVEPOINT request")
    return value


# --- identities ----------------------------------------------------------------------------------

_INSERT_ORGANIZATION = """
INSERT INTO organizations (id, name, vendor_type, created_at, updated_at)
VALUES ($1, $2, $3, $4, $4)
ON CONFLICT (id) DO NOTHING
"""

_UPSERT_USER = """
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
RETURNING *
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
    yield execute(_INSERT_ORGANIZATION, organization_id, name, vendor_type, now)
    if organization_name:
        yield execute(
            "UPDATE organizations SET name = $2, updated_at = $3 WHERE id = $1 AND name <> $2",
            organization_id,
            organization_name,
            now,
        )
    row = yield fetchrow(_UPSERT_USER, user_id, organization_id, username, display_name, role, now)
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


def set_connection_status(
    *, group_id: UUID, organization_id: UUID, status: str, now: datetime
) -> Op[Connection]:
    """Move a membership along invited → active/declined, or any → removed."""
    row = yield fetchrow(
        """
        UPDATE vendor_connections
        SET status = $3, updated_at = $4,
            joined_at = CASE WHEN $3 = 'active' THEN $4 ELSE joined_at END
        WHERE group_id = $1 AND organization_id = $2
        RETURNING *
        """,
        group_id,
        organization_id,
        status,
        now,
    )
    if row is None:
        raise NotFound(f"organization {organization_id} is not a member of group {group_id}")
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
WHERE sender_user_id = $1 AND client_msg_id = $2
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
    sender already stored this client_msg_id.

    The seq comes from bumping `messaging_threads.last_seq` inside the write transaction: the
    row lock serializes writers, also across hub processes sharing one PostgreSQL, and a rolled
    back message gives its seq back, so seqs stay gap-free.
    """
    existing = yield fetchrow(MESSAGE_BY_CLIENT_ID, message.sender_user_id, message.client_msg_id)
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


MESSAGE_COLUMNS = """
id, thread_id, seq, sender_user_id, sender_org_id, kind, body_ciphertext, body_nonce,
key_version, client_msg_id, reply_to, metadata, created_at, edited_at, deleted_at
"""


def message_rows(
    thread_id: UUID,
    *,
    after_seq: int | None = None,
    before_seq: int | None = None,
    limit: int = 100,
) -> Op[list[dict[str, Any]]]:
    """Sealed message rows of a thread in seq order: the `limit` after `after_seq`, or the
    `limit` just before `before_seq` (still returned oldest first)."""
    if before_seq is not None:
        rows = yield fetch(
            f"SELECT {MESSAGE_COLUMNS} FROM thread_messages "  # noqa: S608 (constant columns)
            "WHERE thread_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3",
            thread_id,
            before_seq,
            limit,
        )
        return list(reversed(rows))
    rows = yield fetch(
        f"SELECT {MESSAGE_COLUMNS} FROM thread_messages "  # noqa: S608 (constant columns)
        "WHERE thread_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        thread_id,
        after_seq or 0,
        limit,
    )
    return rows


def oldest_seq(thread_id: UUID) -> Op[int | None]:
    value = yield fetchval("SELECT min(seq) FROM thread_messages WHERE thread_id = $1", thread_id)
    return value


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


def set_presence(*, thread_id: UUID, user_id: UUID, status: str, now: datetime) -> Op[Presence]:
    row = yield fetchrow(
        """
        INSERT INTO thread_presence (thread_id, user_id, status, last_seen_at)
        VALUES ($1, $2, $3, $4)
        ON CONFLICT (thread_id, user_id) DO UPDATE SET
            status = excluded.status, last_seen_at = excluded.last_seen_at
        RETURNING *
        """,
        thread_id,
        user_id,
        status,
        now,
    )
    return row_to(row, Presence)


def thread_presence(thread_id: UUID) -> Op[list[Presence]]:
    rows = yield fetch(
        "SELECT * FROM thread_presence WHERE thread_id = $1 ORDER BY user_id", thread_id
    )
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


def thread_access_row(thread_id: UUID, organization_id: UUID) -> Op[dict[str, Any] | None]:
    """A thread with its group's state and the caller organization's membership, in one query:
    everything an access decision about this thread needs."""
    row = yield fetchrow(
        """
        SELECT t.*, g.status AS group_status, g.owner_organization_id,
               c.role AS member_role, c.status AS member_status
        FROM messaging_threads AS t
        JOIN vendor_connection_groups AS g ON g.id = t.group_id
        LEFT JOIN vendor_connections AS c
               ON c.group_id = g.id AND c.organization_id = $2
        WHERE t.id = $1
        """,
        thread_id,
        organization_id,
    )
    return row


# --- realtime (WebSocket layer) ------------------------------------------------------------------


def set_presences(*, thread_id: UUID, statuses: dict[UUID, str], now: datetime) -> Op[None]:
    """Several users' presence in one thread, in one operation (the thread actor coalesces)."""
    for user_id, status in statuses.items():
        yield from set_presence(thread_id=thread_id, user_id=user_id, status=status, now=now)
