"""Erasing a user, whichever door asks (`POST /me/erase`, `POST /users/{id}/erase`,
`hub erase user`): the steps of `hub.storage.erasure` in order, each its own transaction, with
what must follow each commit (the `message_deleted` frames, the blobs, the WAL scrub).

The user is marked erased first, so that from that commit on no token of theirs is accepted
and nobody's notifications reach them; then their messages become tombstones batch after
batch, each thread's subscribers told after each batch; then what is theirs alone goes and the
profile is pseudonymised, with the audit row (`privacy.erase_user`: who, when, how many of
each; never what was said). An erasure cut short (a crash, the database away) is finished by
asking again: every step only does what is left.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

import msgspec

from hub.errors import NotFound
from hub.messaging import MessageRouter, tell_deleted
from hub.storage import Storage
from hub.storage.erasure import (
    AUDIT_BATCH,
    MESSAGES_BATCH,
    Erased,
    clear_audit_addresses,
    erasable_user,
    erase_messages,
    erase_profile,
    mark_erased,
)
from hub.storage.records import AuditEntry, UserProfile
from hub.storage.sql import Op


@dataclass
class ErasureReport:
    """What an erasure removed, for the answer, the CLI's line and the audit row."""

    user_id: UUID
    username: str = ""
    messages: int = 0
    blobs: int = 0
    audit_rows_cleared: int = 0
    removed: dict[str, int] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        return {
            "messages": self.messages,
            "blobs": self.blobs,
            "audit_rows_cleared": self.audit_rows_cleared,
            **self.removed,
        }


async def find_user(storage: Storage, user_id: UUID) -> UserProfile | None:
    """The user as stored, or None: who may erase them is `hub.access.may_erase_user`'s call."""
    try:
        return await storage.read(erasable_user(user_id))
    except NotFound:
        return None


async def erase_user(
    storage: Storage,
    router: MessageRouter,
    user_id: UUID,
    entry: AuditEntry,
    *,
    erased_by: UUID | None,
    remove_blobs: Callable[[Sequence[str]], Awaitable[None]],
    batch: int = MESSAGES_BATCH,
) -> ErasureReport:
    """Erase the user (the caller decided it may be done): see the module. `entry` is the
    audit row without its counts; an actor's address is not kept when they erase themselves.
    NotFound when the hub never saw the user."""
    await storage.read(erasable_user(user_id))
    await storage.write(lambda now: mark_erased(user_id, erased_by, now))
    router.user_erased(user_id)
    report = ErasureReport(user_id)
    while True:
        done = await storage.write(lambda now: erase_messages(user_id, now, batch))
        _told(router, done.changes)
        await remove_blobs(done.blob_keys)
        report.messages += len(done.changes)
        report.blobs += len(done.blob_keys)
        if len(done.changes) < batch:
            break
    while True:
        cleared = await storage.write(lambda _: clear_audit_addresses(user_id, AUDIT_BATCH))
        report.audit_rows_cleared += cleared
        if cleared < AUDIT_BATCH:
            break
    if entry.actor_user_id == user_id:
        entry = msgspec.structs.replace(entry, ip=None, user_agent=None)

    def audited(erased: Erased) -> list[AuditEntry]:
        counts = {**report.counts(), **erased.counts}
        counts["messages"] += len(erased.changes)
        counts["blobs"] += len(erased.blob_keys)
        details = {**entry.details, **counts}
        return [msgspec.structs.replace(entry, target_id=str(user_id), details=details)]

    erased = await storage.write(lambda now: _finish(user_id, erased_by, now), audit=audited)
    _told(router, erased.changes)
    await remove_blobs(erased.blob_keys)
    report.messages += len(erased.changes)
    report.blobs += len(erased.blob_keys)
    report.username = erased.username
    report.removed = dict(erased.counts)
    # As after a message's deletion: no copy of the overwritten pages left in SQLite's WAL.
    await storage.engine.scrub()
    router.user_erased(user_id)
    return report


def _finish(user_id: UUID, erased_by: UUID | None, now: datetime) -> Op[Erased]:
    return (yield from erase_profile(user_id, erased_by, now))


def _told(router: MessageRouter, made: Sequence) -> None:
    for change in made:
        if change.new:
            tell_deleted(router, change)
