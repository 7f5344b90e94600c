"""Groups (the vendors working one wedding), their member organizations and invitations, and the
clients (couples) a group may serve. Listings carry the caller's stats; who may do what to a group
is decided in `hub.access`, not here."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID

from hub.errors import Conflict, NotFound
from hub.storage.identities import ensure_organization
from hub.storage.records import (
    Client,
    Connection,
    Group,
    GroupListing,
    Invitation,
    Membership,
    row_to,
)
from hub.storage.sql import Op, execute, fetch, fetchrow, fetchval
from hub.storage.sqltext import Binder
from hub.storage.updates import archive_row, partial_update

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


def update_group(group_id: UUID, changes: dict[str, Any], now: datetime) -> Op[tuple[Group, Group]]:
    """Apply a partial update; returns (before, after) so the caller can audit what changed."""
    before = yield from get_group(group_id)
    return (yield from partial_update("group", before, changes, GROUP_UPDATABLE, now))


def archive_group(group_id: UUID, now: datetime) -> Op[Group]:
    yield from get_group(group_id)  # NotFound when it is gone
    return (yield from archive_row("group", group_id, now))


GROUP_UPDATABLE = ("name", "description", "wedding_date", "settings")


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
) -> Op[list[GroupListing]]:
    """Groups (newest first) with the caller's stats: members, threads, messages, unread.

    Unread counts the messages of others after the caller's read receipt in each thread.
    `after` is the (created_at, id) of the last row of the previous page.
    """
    if not group_ids:
        return []
    bind = Binder(user_id)
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
    return [_group_listing(row) for row in rows]


def _group_listing(row: dict[str, Any]) -> GroupListing:
    # The counts may come back as PostgreSQL numerics, the latest activity (an aggregate, so of
    # no declared column type) as SQLite text.
    thread_activity = row["last_thread_activity_at"]
    if isinstance(thread_activity, str):
        thread_activity = datetime.fromisoformat(thread_activity)
    return GroupListing(
        group=row_to(row, Group),
        member_count=int(row["member_count"]),
        thread_count=int(row["thread_count"]),
        message_count=int(row["message_count"]),
        unread_count=int(row["unread_count"]),
        last_thread_activity_at=thread_activity,
    )


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


def invite_organization(
    *,
    group_id: UUID,
    organization_id: UUID,
    vendor_type: str,
    role: str,
    invited_by: UUID,
    now: datetime,
) -> Op[Connection]:
    """Invite an organization, creating its row if no user of it has signed in yet. Re-inviting
    one that declined or was removed invites it again; one that is already invited or active is
    a conflict (409 on the REST API), not a bad request."""
    existing = yield fetchrow(
        "SELECT status FROM vendor_connections WHERE group_id = $1 AND organization_id = $2",
        group_id,
        organization_id,
    )
    if existing is not None and existing["status"] in ("invited", "active"):
        raise Conflict(f"organization {organization_id} is already {existing['status']} here")
    yield from ensure_organization(organization_id=organization_id, now=now)
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


# The most pending invitations one listing returns (newest first).
PENDING_INVITATIONS_MAX = 200

_PENDING_INVITATIONS = f"""
SELECT c.group_id, g.name AS group_name, g.wedding_date, g.owner_organization_id,
       o.name AS owner_organization_name, c.vendor_type, c.role, c.invited_at,
       u.display_name AS invited_by_name
FROM vendor_connections AS c
JOIN vendor_connection_groups AS g ON g.id = c.group_id
JOIN organizations AS o ON o.id = g.owner_organization_id
LEFT JOIN user_profiles AS u ON u.id = c.invited_by
WHERE c.organization_id = $1 AND c.status = 'invited' AND g.status = 'active'
ORDER BY c.invited_at DESC, c.group_id DESC
LIMIT {PENDING_INVITATIONS_MAX}
"""  # noqa: S608 (a constant)


def pending_invitations(organization_id: UUID) -> Op[list[Invitation]]:
    """An organization's pending invitations to groups that are not archived, newest first, at
    most `PENDING_INVITATIONS_MAX`, each with its group, the group's owner and who sent it.
    Whether the caller may see them is `hub.access`'s to decide."""
    rows = yield fetch(_PENDING_INVITATIONS, organization_id)
    return [row_to(row, Invitation) for row in rows]


def connection_of(group_id: UUID, organization_id: UUID) -> Op[Connection | None]:
    row = yield fetchrow(
        "SELECT * FROM vendor_connections WHERE group_id = $1 AND organization_id = $2",
        group_id,
        organization_id,
    )
    return None if row is None else row_to(row, Connection)


def member_rows(group_id: UUID) -> Op[list[Membership]]:
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
    return [_membership(row) for row in rows]


def _membership(row: dict[str, Any]) -> Membership:
    return Membership(
        connection=row_to(row, Connection), organization_name=row["organization_name"]
    )


def member_row(group_id: UUID, organization_id: UUID) -> Op[Membership | None]:
    row = yield fetchrow(
        """
        SELECT c.*, o.name AS organization_name
        FROM vendor_connections AS c JOIN organizations AS o ON o.id = c.organization_id
        WHERE c.group_id = $1 AND c.organization_id = $2
        """,
        group_id,
        organization_id,
    )
    return None if row is None else _membership(row)


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


def removals_since(since: datetime) -> Op[list[tuple[UUID, UUID, datetime]]]:
    """Organizations removed from a group after `since` (group, organization, when): how a
    node learns of revocations decided elsewhere while the broker cannot tell it
    (hub.actors.seqcheck)."""
    rows = yield fetch(
        "SELECT group_id, organization_id, updated_at FROM vendor_connections "
        "WHERE status = 'removed' AND updated_at > $1 ORDER BY updated_at",
        since,
    )
    return [(row["group_id"], row["organization_id"], row["updated_at"]) for row in rows]


def escalation_policy_of(group_id: UUID) -> Op[dict[str, Any] | None]:
    """The group's stored escalation policy (None: the defaults; hub.notifications.policy)."""
    row = yield fetchrow(
        "SELECT escalation_policy FROM vendor_connection_groups WHERE id = $1", group_id
    )
    if row is None:
        raise NotFound(f"group {group_id} not found")
    return row["escalation_policy"]


def set_escalation_policy(group_id: UUID, policy: dict[str, Any], now: datetime) -> Op[None]:
    yield execute(
        "UPDATE vendor_connection_groups SET escalation_policy = $2, updated_at = $3 WHERE id = $1",
        group_id,
        policy,
        now,
    )
