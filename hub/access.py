"""Who may see and do what: the one place both REST and WebSocket ask.

A user sees a group only while their organization's connection to it is `active`. Inside it, what
they may do depends on their role (from the token) and whether their organization owns the group:

    read, post, create_thread          any active member (vendor and up)
    edit (a message)                   its sender (any role)
    delete (a message)                 its sender, or an owner or admin of the owning organization
    update_thread                      manager, admin, owner
    update_group, archive_group,
    invite, remove_member, view_audit,
    manage_retention                   owner or admin of the owning organization

A group (or thread) of another organization is reported as not found, never as forbidden, so ids
cannot be probed. Archived groups and threads are read-only, except for their retention and legal
hold (`manage_retention`): an archived wedding is exactly the one whose purge may need holding.
A pending invitation is answered (accept or decline) by the invited organization's owner or
admin, who alone may list their organization's pending invitations. Owners, admins and managers
may create groups, which their organization then owns. Anyone may export their own data
(`GET /me/export`); only an organization's owner may export the organization's
(`may_export_organization`). A user may erase themselves (`POST /me/erase`); an owner erases
any user of their organization, an admin any but its owners (`may_erase_user`); a user of
another organization, or one the hub never saw, is not found. The organization's owners and
admins alone list its users (`may_list_users`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeVar
from uuid import UUID

from hub.auth import Principal
from hub.errors import Conflict, Forbidden, NotFound
from hub.storage import Storage
from hub.storage.access_rows import thread_access_row
from hub.storage.attachments import AttachmentRecord, get_attachment
from hub.storage.groups import connection_of, get_group, group_ids_of, pending_invitations
from hub.storage.records import (
    Connection,
    Group,
    Invitation,
    Thread,
    ThreadAccessRow,
    ThreadSnapshot,
    UserProfile,
)
from hub.storage.sql import Op

T = TypeVar("T")

Action = Literal[
    "read",
    "post",
    "create_thread",
    "update_thread",
    "update_group",
    "archive_group",
    "invite",
    "remove_member",
    "view_audit",
    "acknowledge",
    "mute",
    "edit",
    "manage_retention",
]

# Muting is the caller's own setting, so an archived thread may be muted too; retention and
# legal holds matter most once a wedding is archived.
_READ_ONLY_ACTIONS = {"read", "view_audit", "mute", "manage_retention"}
_ANY_MEMBER = {"read", "post", "create_thread", "acknowledge", "mute", "edit"}
_THREAD_MANAGERS = {"owner", "admin", "manager"}
_GROUP_ADMIN_ACTIONS = {
    "update_group",
    "archive_group",
    "invite",
    "remove_member",
    "view_audit",
    "manage_retention",
}


@dataclass(frozen=True, slots=True)
class GroupAccess:
    group: Group
    membership: Connection


@dataclass(frozen=True, slots=True)
class ThreadAccess:
    thread: Thread
    group_id: UUID
    owner_organization_id: UUID
    member_role: str


def is_allowed(principal: Principal, *, owns_group: bool, action: Action) -> bool:
    """The role table above; membership and archive state are checked by the callers below."""
    if action in _ANY_MEMBER:
        return True
    if action == "update_thread":
        return principal.role in _THREAD_MANAGERS
    if action in _GROUP_ADMIN_ACTIONS:
        return owns_group and principal.role in ("owner", "admin")
    return False


async def authorize_group(
    storage: Storage, principal: Principal, group_id: UUID, action: Action
) -> GroupAccess:
    membership = await storage.read(connection_of(group_id, principal.org_id))
    if membership is None or membership.status != "active":
        raise NotFound(f"group {group_id} not found")
    group = await storage.read(get_group(group_id))
    _check(principal, group.owner_organization_id, group.status == "archived", action, "group")
    return GroupAccess(group, membership)


def may(principal: Principal, group: Group, action: Action) -> bool:
    """Whether `authorize_group` allows `action` on this group to a member: answers carry it
    so that a client offers only what the hub would take, deciding nothing of its own."""
    try:
        _check(principal, group.owner_organization_id, group.status == "archived", action, "group")
    except (Forbidden, Conflict):
        return False
    return True


async def authorize_thread(
    storage: Storage, principal: Principal, thread_id: UUID, action: Action
) -> ThreadAccess:
    return await storage.read(thread_access(principal, thread_id, action))


async def read_thread(
    storage: Storage,
    principal: Principal,
    thread_id: UUID,
    *,
    after_seq: int | None = None,
    before_seq: int | None = None,
    limit: int = 50,
) -> tuple[ThreadSnapshot, ThreadAccess]:
    """The thread as the caller opens it ("read"): their read position, presence, everyone's
    read receipts and a page of history (`Storage.thread_snapshot`), decided in the read's own
    statement: one snapshot, so what is read is what was allowed (no membership change in
    between), and one round trip. Nothing of the page, the presence or the receipts is used
    unless the decision allows it. Returns the decision too (what the caller may do there)."""
    decided: list[ThreadAccess] = []

    def decide(row: ThreadAccessRow | None) -> None:
        decided.append(_decide_thread(principal, thread_id, row, "read"))

    snapshot = await storage.thread_snapshot(
        thread_id,
        organization_id=principal.org_id,
        reader_id=principal.user_id,
        decide=decide,
        after_seq=after_seq,
        before_seq=before_seq,
        limit=limit,
    )
    return snapshot, decided[-1]


async def authorize_attachment(
    storage: Storage, principal: Principal, attachment_id: UUID
) -> tuple[AttachmentRecord, ThreadAccess]:
    """An attachment is read by whoever may read its thread; to everyone else it does not exist
    (404, as for threads), whoever uploaded it."""
    record = await storage.read(get_attachment(attachment_id))
    if record is None:
        raise NotFound(f"attachment {attachment_id} not found")
    try:
        access = await authorize_thread(storage, principal, record.thread_id, "read")
    except NotFound:
        raise NotFound(f"attachment {attachment_id} not found") from None
    return record, access


def thread_access(principal: Principal, thread_id: UUID, action: Action) -> Op[ThreadAccess]:
    """Decide inside a read operation: raises NotFound, Forbidden or Conflict."""
    row = yield from thread_access_row(thread_id, principal.org_id)
    return _decide_thread(principal, thread_id, row, action)


def decided_in_write(
    principal: Principal, thread_id: UUID, action: Action
) -> Callable[[dict[tuple[UUID, UUID], ThreadAccessRow | None]], Op[UUID]]:
    """The decision `authorize_thread` takes, to be taken instead inside the write it allows
    (the storage actor runs it in the transaction, before the message): what is written is
    what was allowed, with no membership change in between, and no read of its own beforehand.
    Returns the thread's group id; raises as `thread_access` does. `rows` is shared by the
    writes of one run of a batch, so many messages of one organization to one thread fetch its
    access row once."""

    def decide(rows: dict[tuple[UUID, UUID], ThreadAccessRow | None]) -> Op[UUID]:
        key = (thread_id, principal.org_id)
        if key not in rows:
            rows[key] = yield from thread_access_row(thread_id, principal.org_id)
        return _decide_thread(principal, thread_id, rows[key], action).group_id

    return decide


def may_edit_message(principal: Principal, sender_user_id: UUID) -> bool:
    """A message's text is its sender's: nobody else changes what they said (the caller has
    decided "edit" on its thread, so archived threads are refused before this)."""
    return principal.user_id == sender_user_id


def may_delete_message(principal: Principal, access: ThreadAccess, sender_user_id: UUID) -> bool:
    """Its sender deletes a message; so does a moderator (`may_delete_any`)."""
    return principal.user_id == sender_user_id or may_delete_any(principal, access)


def may_delete_any(principal: Principal, access: ThreadAccess) -> bool:
    """An owner or admin of the organization that owns the group deletes any message in it (a
    planner removing what should not be there, a phone number posted by mistake)."""
    owns_group = principal.org_id == access.owner_organization_id
    return owns_group and principal.role in ("owner", "admin")


def _decide_thread(
    principal: Principal, thread_id: UUID, row: ThreadAccessRow | None, action: Action
) -> ThreadAccess:
    if row is None or row.member_status != "active":
        raise NotFound(f"thread {thread_id} not found")
    thread = row.thread
    archived = row.group_status == "archived" or thread.status == "archived"
    _check(principal, row.owner_organization_id, archived, action, "thread")
    assert row.member_role is not None  # an active member has a role
    return ThreadAccess(thread, thread.group_id, row.owner_organization_id, row.member_role)


def _check(
    principal: Principal, owner_org: UUID, archived: bool, action: Action, what: str
) -> None:
    if not is_allowed(principal, owns_group=principal.org_id == owner_org, action=action):
        raise Forbidden(f"role {principal.role} may not {action.replace('_', ' ')} here")
    if archived and action not in _READ_ONLY_ACTIONS:
        raise Conflict(f"this {what} is archived and read-only")


# --- listings and invitations (REST) -------------------------------------------------------------


async def readable_group_ids(storage: Storage, principal: Principal) -> list[UUID]:
    """Every group the caller may read: those where their organization is an active member.
    Listings filter by these ids instead of deciding membership themselves."""
    return await storage.read(group_ids_of(principal.org_id))


async def auditable_group_ids(storage: Storage, principal: Principal) -> list[UUID]:
    """Groups whose audit trail the caller may read: owned by their organization, and only for
    the roles allowed to `view_audit`; other roles are refused outright."""
    if not is_allowed(principal, owns_group=True, action="view_audit"):
        raise Forbidden(f"role {principal.role} may not view audit")
    return await storage.read(group_ids_of(principal.org_id, owned_only=True))


_GROUP_CREATORS = {"owner", "admin", "manager"}
_INVITATION_RESPONDERS = {"owner", "admin"}


def may_create_group(principal: Principal) -> None:
    """Owners, admins and managers (planners) start groups for their organization; vendors
    join the groups they are invited to."""
    if principal.role not in _GROUP_CREATORS:
        raise Forbidden(f"role {principal.role} may not create groups")


_ORGANIZATION_EXPORTERS = {"owner"}


def may_export_organization(principal: Principal) -> None:
    """An organization's export holds every user's messages and files: its owners alone may
    ask for it (an admin manages the organization, not its people's data)."""
    if principal.role not in _ORGANIZATION_EXPORTERS:
        raise Forbidden(f"role {principal.role} may not export the organization's data")


_ERASERS = {"owner", "admin"}


def may_erase_user(principal: Principal, user: UserProfile | None, user_id: UUID) -> None:
    """A data subject may have themselves erased (GDPR article 17), an organization's last
    owner too (what they owned stays the organization's). The organization's owners and admins
    erase its other users (someone who left asked them), but an admin not an owner: an admin
    manages the organization's people, not those it answers to. Other organizations' users do
    not exist for the caller (404), as their groups do not."""
    if user is None or user.organization_id != principal.org_id:
        raise NotFound(f"user {user_id} not found")
    refusal = _erase_refusal(principal, user)
    if refusal:
        raise Forbidden(refusal)


def may_erase_other(principal: Principal, user: UserProfile) -> bool:
    """Whether `may_erase_user` lets the caller erase this other user of their organization
    now: the people list offers "Erase" by it (never for the caller themselves, who have
    "Delete my account", nor for someone already erased)."""
    return (
        user.organization_id == principal.org_id
        and user.id != principal.user_id
        and user.erased_at is None
        and _erase_refusal(principal, user) is None
    )


def _erase_refusal(principal: Principal, user: UserProfile) -> str | None:
    if user.id == principal.user_id:
        return None
    if principal.role not in _ERASERS:
        return f"role {principal.role} may not erase other users"
    if user.role == "owner" and principal.role != "owner":
        return "only an owner erases an owner of the organization"
    return None


def may_list_users(principal: Principal) -> None:
    """An organization's people (names, roles, when last seen) are listed to those who manage
    them, its owners and admins: the ones who may erase them (`may_erase_user`)."""
    if principal.role not in _ERASERS:
        raise Forbidden(f"role {principal.role} may not list the organization's users")


async def authorize_invitation(
    storage: Storage, principal: Principal, group_id: UUID
) -> Connection:
    """An invitation may be answered by the invited organization's owner or admin, while it is
    pending. Without a pending invitation the group does not exist for the caller (404)."""
    membership = await storage.read(connection_of(group_id, principal.org_id))
    if membership is None or membership.status != "invited":
        raise NotFound(f"no pending invitation to group {group_id}")
    if principal.role not in _INVITATION_RESPONDERS:
        raise Forbidden(f"role {principal.role} may not answer invitations")
    return membership


async def invitations_to_answer(storage: Storage, principal: Principal) -> list[Invitation]:
    """The caller organization's pending invitations (groups not archived, newest first, at
    most `hub.storage.groups.PENDING_INVITATIONS_MAX`), for the roles that may answer them;
    other roles are refused outright, as `authorize_invitation` refuses them an answer."""
    if principal.role not in _INVITATION_RESPONDERS:
        raise Forbidden(f"role {principal.role} may not list invitations")
    return await storage.read(pending_invitations(principal.org_id))
