"""Building the world a test needs: users, organizations, groups, threads. Straight through the
storage operations, so tests of one feature do not depend on another feature's endpoints."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import msgspec
import trio

from hub.auth import Principal, issue_token
from hub.config import Settings
from hub.storage import Storage
from hub.storage.actor import Request, StorageActor
from hub.storage.engine import Engine
from hub.storage.groups import create_group, invite_organization, respond_to_invitation
from hub.storage.identities import upsert_identity
from hub.storage.messages import MESSAGE_COLUMNS, MESSAGES_WITH_SENDERS
from hub.storage.records import Group, MessageDraft, StoredMessage, Thread
from hub.storage.sql import Op, fetch
from hub.storage.threads import create_thread


@dataclass(frozen=True)
class Member:
    principal: Principal
    token: str

    @property
    def user_id(self) -> UUID:
        return self.principal.user_id

    @property
    def org_id(self) -> UUID:
        return self.principal.org_id


async def new_member(
    storage: Storage,
    settings: Settings,
    *,
    org_id: UUID | None = None,
    role: str = "owner",
    name: str = "Test User",
    organization_name: str | None = None,
) -> Member:
    """A user with a token; their organization is new unless `org_id` is given, and keeps the
    hub's default name unless `organization_name` is given."""
    user_id, org_id = uuid.uuid4(), org_id or uuid.uuid4()
    await storage.write(
        lambda now: upsert_identity(
            user_id=user_id,
            organization_id=org_id,
            username=name.lower().replace(" ", "."),
            display_name=name,
            role=role,
            now=now,
            organization_name=organization_name,
        )
    )
    # Its data key, as its first message would make it: tests that seal drafts themselves
    # (storage.sealing.seal) need it there.
    await storage.sealing.ring_for(org_id)
    token = issue_token(settings, user_id=user_id, org_id=org_id, role=role, name=name)
    return Member(Principal(user_id, org_id, role, name, 0.0), token)


async def new_group(storage: Storage, owner: Member, name: str = "Smith & Jones") -> Group:
    group_id = uuid.uuid4()
    return await storage.write(
        lambda now: create_group(
            group_id=group_id,
            owner_organization_id=owner.org_id,
            created_by=owner.user_id,
            name=name,
            now=now,
        )
    )


async def add_member(
    storage: Storage, group: Group, member: Member, *, invited_by: Member, role: str = "vendor"
) -> None:
    """Invite the member's organization and accept, as the REST flow would."""
    await storage.write(
        lambda now: invite_organization(
            group_id=group.id,
            organization_id=member.org_id,
            vendor_type="photographer",
            role=role,
            invited_by=invited_by.user_id,
            now=now,
        )
    )
    await storage.write(
        lambda now: respond_to_invitation(
            group_id=group.id, organization_id=member.org_id, accept=True, now=now
        )
    )


async def new_thread(
    storage: Storage, group: Group, creator: Member, title: str = "Ceremony timeline"
) -> Thread:
    thread_id = uuid.uuid4()
    return await storage.write(
        lambda now: create_thread(
            thread_id=thread_id, group_id=group.id, title=title, created_by=creator.user_id, now=now
        )
    )


def message(
    thread: Thread, sender: Member, body: str, client_msg_id: str | None = None
) -> MessageDraft:
    return MessageDraft(
        thread_id=thread.id,
        sender_user_id=sender.user_id,
        sender_org_id=sender.org_id,
        client_msg_id=client_msg_id or uuid.uuid4().hex,
        body=body,
    )


async def send(
    storage: Storage, thread: Thread, sender: Member, body: str, **kw: str
) -> StoredMessage:
    return await storage.append_message(message(thread, sender, body, **kw))


async def run_batch(engine: Engine, requests: list[Request]) -> StorageActor:
    """Queue every request before a storage actor runs, so they land in one batch, and run it
    until its closed inbox is drained."""
    send, receive = trio.open_memory_channel[Request](len(requests))
    for request in requests:
        send.send_nowait(request)
    await send.aclose()
    actor = StorageActor(engine, receive)
    await actor.run()
    return actor


async def send_varied_history(
    storage: Storage, thread: Thread, sender: Member, replier: Member, notes: int
) -> StoredMessage:
    """A history that exercises every column a page carries: a first message, a location reply
    to it by `replier` (nested metadata with a null, non-ASCII text), then `notes` plain ones.
    Returns the first message."""
    first = await send(storage, thread, sender, "Tent at 3pm")
    await storage.append_message(
        msgspec.structs.replace(
            message(thread, replier, 'Gate "B" \u2014 \U0001f490'),
            kind="location",
            reply_to=first.id,
            metadata={"latitude": 51.501, "longitude": -0.142, "tags": ["rain", None, 3]},
        )
    )
    for i in range(notes):
        await send(storage, thread, sender, f"note {i}")
    return first


def plain_message_rows(thread_id: UUID) -> Op[list[dict[str, Any]]]:
    """A thread's message rows read the plain way, row by row in seq order, to compare packed
    reads with."""
    rows = yield fetch(
        f"SELECT {MESSAGE_COLUMNS} FROM {MESSAGES_WITH_SENDERS} "
        "WHERE m.thread_id = $1 ORDER BY m.seq",
        thread_id,
    )
    return rows


async def planner_and_vendor(
    storage: Storage, settings: Settings, *, vendor_name: str = "Dee Jay"
) -> tuple[Member, Member, Group, Thread]:
    """Paula Planner's group with a vendor of another organization in it, and one thread."""
    planner = await new_member(storage, settings, name="Paula Planner")
    vendor = await new_member(storage, settings, role="vendor", name=vendor_name)
    group = await new_group(storage, planner)
    await add_member(storage, group, vendor, invited_by=planner)
    thread = await new_thread(storage, group, planner)
    return planner, vendor, group, thread
