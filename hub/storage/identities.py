"""Users and their organizations. The identity provider is external: the hub makes their rows from
verified token claims on first sight and keeps names and roles current; an invitation may name an
organization none of whose users has signed in yet. An erased user's row is never refreshed
again: what a new token of theirs says must not bring their name back (`hub.storage.erasure`)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from hub.errors import NotFound
from hub.storage.records import Organization, UserProfile, row_to
from hub.storage.sql import Op, execute, fetch, fetchrow

INSERT_ORGANIZATION = """
INSERT INTO organizations (id, name, vendor_type, created_at, updated_at)
VALUES ($1, $2, $3, $4, $4)
ON CONFLICT (id) DO NOTHING
"""

UPSERT_USER = """
INSERT INTO user_profiles
    (id, organization_id, username, display_name, role, created_at, updated_at, last_seen_at,
     email)
VALUES ($1, $2, $3, $4, $5, $6, $6, $6, $7)
ON CONFLICT (id) DO UPDATE SET
    organization_id = excluded.organization_id,
    username = excluded.username,
    display_name = excluded.display_name,
    role = excluded.role,
    email = excluded.email,
    updated_at = excluded.updated_at,
    last_seen_at = excluded.last_seen_at
WHERE user_profiles.erased_at IS NULL
"""

ERASED_AMONG = "SELECT id FROM user_profiles WHERE erased_at IS NOT NULL AND id IN "


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
    email: str | None = None,
) -> Op[UserProfile]:
    """Create or refresh a user and their organization from a verified token's claims.

    The identity provider is external: the first request of a user makes their rows, later ones
    keep name and role current. An existing organization keeps its name unless one is given.
    An erased user's row is left as it is and returned so (`erased_at` set).
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
        UPSERT_USER + " RETURNING *",
        user_id,
        organization_id,
        username,
        display_name,
        role,
        now,
        email,
    )
    if row is None:  # erased: the upsert's WHERE left the pseudonymised row alone
        return (yield from get_user(user_id))
    return row_to(row, UserProfile)


def get_user(user_id: UUID) -> Op[UserProfile]:
    row = yield fetchrow("SELECT * FROM user_profiles WHERE id = $1", user_id)
    if row is None:
        raise NotFound(f"user {user_id} not found")
    return row_to(row, UserProfile)


# The most users one listing of an organization returns.
ORGANIZATION_USERS_MAX = 1000

_ORGANIZATION_USERS = f"""
SELECT * FROM user_profiles WHERE organization_id = $1
ORDER BY erased_at IS NOT NULL, lower(display_name), display_name, id
LIMIT {ORGANIZATION_USERS_MAX}
"""  # noqa: S608 (a constant)


def organization_users(organization_id: UUID) -> Op[list[UserProfile]]:
    """An organization's users the hub has met, by name, the erased ones (pseudonymised,
    "Erased user") last; at most `ORGANIZATION_USERS_MAX`. Who may list them is
    `hub.access`'s to decide (`may_list_users`)."""
    rows = yield fetch(_ORGANIZATION_USERS, organization_id)
    return [row_to(row, UserProfile) for row in rows]


def get_organization(organization_id: UUID) -> Op[Organization]:
    """An organization's row: its name is the one an invitation or the identity provider gave
    it, or the hub's default for one first seen in a token ("Organization 1a2b3c4d")."""
    row = yield fetchrow("SELECT * FROM organizations WHERE id = $1", organization_id)
    if row is None:
        raise NotFound(f"organization {organization_id} not found")
    return row_to(row, Organization)


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
