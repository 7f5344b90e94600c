"""The retention actor: archives each wedding's group `archive_days_after_wedding` days after its
wedding and purges its messages and files `retention_days_after_wedding` days after it (the last
activity anchors a group without a date), unless it is under a legal hold; and deletes audit
rows older than HUB_AUDIT_RETENTION_DAYS (docs/privacy.md, "Retention").

One actor per hub node, owned by `run_hub`'s nursery. It wakes every HUB_RETENTION_INTERVAL_S
on Trio's clock and reads its "now" from a wall-clock moment taken at start plus Trio's elapsed
time, so trio's autojump clock moves it in tests and a wall clock that jumps cannot purge early.
A pass that fails (the database, the blob store) is logged, counted and tried again at the next
interval; it never ends the hub. With several nodes each looks: every write re-checks that its
group is due in its own transaction, so two nodes never archive or purge one group twice.
`hub retention run` makes one pass from the command line (`StoredRetention.run_pass`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol
from uuid import UUID

import trio

from hub.attachments.service import Attachments
from hub.errors import HubError
from hub.metrics import Metrics
from hub.storage import Storage
from hub.storage.records import AuditEntry
from hub.storage.retention import (
    AUDIT_BATCH,
    PURGE_BATCH,
    Archived,
    PurgedBatch,
    archive_if_due,
    delete_audit_before,
    due_groups,
    purge_batch,
)

log = logging.getLogger(__name__)


@dataclass
class PassReport:
    """What one pass did: the groups archived and purged, and the counts of what went."""

    archived: list[UUID] = field(default_factory=list)
    purged: list[UUID] = field(default_factory=list)
    messages_deleted: int = 0
    attachments_deleted: int = 0
    audit_rows_deleted: int = 0

    def __bool__(self) -> bool:
        return bool(self.archived or self.purged or self.audit_rows_deleted)


class RetentionWork(Protocol):
    """Where the actor's work is (`StoredRetention`; tests give their own)."""

    async def run_pass(self, now: datetime) -> PassReport: ...


@dataclass(frozen=True, slots=True)
class _PurgeTotals:
    messages: int = 0
    attachments: int = 0
    notifications: int = 0


class StoredRetention:
    """One pass over the database: audit rows first (a failing purge must not keep the audit
    trail past its time), then the groups due."""

    def __init__(
        self,
        storage: Storage,
        attachments: Attachments,
        audit_retention_days: int,
        metrics: Metrics | None = None,
        batch: int | None = None,
    ) -> None:
        self._storage = storage
        self._attachments = attachments
        self._audit_days = audit_retention_days
        self._metrics = metrics
        self._batch = batch

    async def run_pass(self, now: datetime) -> PassReport:
        report = PassReport()
        report.audit_rows_deleted = await self._delete_old_audit(now)
        archive, purge = await self._storage.read(due_groups(now))
        for group_id in archive:
            if await self._archive(group_id, now) is not None:
                report.archived.append(group_id)
        for group_id in purge:
            totals = await self._purge(group_id, now)
            if totals is not None:
                report.purged.append(group_id)
                report.messages_deleted += totals.messages
                report.attachments_deleted += totals.attachments
        return report

    async def _delete_old_audit(self, now: datetime) -> int:
        before = now - timedelta(days=self._audit_days)
        total = 0
        limit = self._batch or AUDIT_BATCH
        while True:
            deleted = await self._storage.write(lambda _: delete_audit_before(before, limit))
            total += deleted
            if self._metrics is not None and deleted:
                self._metrics.retention_audit_rows_deleted.inc(deleted)
            if deleted < limit:
                break
        if total:
            # The deletion itself is a privacy action: recorded, with its cut-off, never what
            # the deleted rows said.
            entry = AuditEntry(
                action="audit.retention_purge",
                target_type="audit",
                details={"rows": total, "before": before.isoformat(), "days": self._audit_days},
            )
            await self._storage.write(lambda _: _nothing(), audit=[entry])
        return total

    async def _archive(self, group_id: UUID, now: datetime) -> Archived | None:
        def audit(done: Archived | None) -> list[AuditEntry]:
            if done is None:
                return []
            details = {
                "anchor": done.anchor,
                "archive_due": done.archive_due.isoformat(),
                "threads": done.threads,
            }
            return [_entry("group.retention_archive", group_id, details)]

        done = await self._storage.write(lambda _: archive_if_due(group_id, now), audit=audit)
        if done is not None and self._metrics is not None:
            self._metrics.retention_archived.inc()
        return done

    async def _purge(self, group_id: UUID, now: datetime) -> _PurgeTotals | None:
        """Batch after batch until the group is purged; None when it stopped being due (a hold
        placed meanwhile), with what was already deleted staying deleted."""
        totals = _PurgeTotals()
        limit = self._batch or PURGE_BATCH
        while True:
            # The counts so far go into the audit row of the batch that finishes the purge.
            def audit(batch: PurgedBatch, so_far: _PurgeTotals = totals) -> list[AuditEntry]:
                if not batch.purged:
                    return []
                details = {
                    "messages": so_far.messages,
                    "attachments": so_far.attachments + batch.attachments,
                    "notifications": so_far.notifications,
                }
                return [_entry("group.retention_purge", group_id, details)]

            batch = await self._storage.write(
                lambda _: purge_batch(group_id, now, limit), audit=audit
            )
            # Rows first, then the blobs they named: a crash between leaves strays for the
            # sweep, never a row naming a missing blob.
            await self._attachments.remove_blobs(batch.blob_keys)
            totals = _PurgeTotals(
                totals.messages + batch.messages,
                totals.attachments + batch.attachments,
                totals.notifications + batch.notifications,
            )
            if batch.stopped:
                log.info("retention: purge of group %s stopped (no longer due)", group_id)
                return None
            if batch.purged:
                # As after a message's deletion: no copy of the purged pages left in the WAL.
                await self._storage.engine.scrub()
                if self._metrics is not None:
                    self._metrics.retention_purged.inc()
                return totals


def _entry(action: str, group_id: UUID, details: dict) -> AuditEntry:
    # No actor: the hub did it, on the group's own settings.
    return AuditEntry(
        action=action,
        target_type="group",
        target_id=str(group_id),
        group_id=group_id,
        details=details,
    )


def _nothing():  # an operation that only carries its audit row into a commit
    return
    yield


@dataclass
class Retention:
    work: RetentionWork
    interval_s: float = 3600.0
    wall_clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    metrics: Metrics | None = None
    passes: int = 0

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Wait an interval, make a pass, until cancelled. The first pass comes one interval
        after start, as the sweep's does: a hub restarting in a loop does not purge in one."""
        anchor_wall, anchor = self.wall_clock(), trio.current_time()
        task_status.started()
        while True:
            await trio.sleep(self.interval_s)
            now = anchor_wall + timedelta(seconds=trio.current_time() - anchor)
            try:
                report = await self.work.run_pass(now)
            except HubError as exc:  # the database is down or slow: next interval
                self._failed()
                log.warning(
                    "retention: pass failed, trying again in %.0fs: %s", self.interval_s, exc
                )
                continue
            except Exception:
                # The blob store's own errors, or a defect: never the hub's messaging's end.
                self._failed()
                log.exception("retention: pass failed, trying again in %.0fs", self.interval_s)
                continue
            self.passes += 1
            if report:
                log.info(
                    "retention: archived %d groups, purged %d (%d messages, %d attachments), "
                    "deleted %d audit rows",
                    len(report.archived),
                    len(report.purged),
                    report.messages_deleted,
                    report.attachments_deleted,
                    report.audit_rows_deleted,
                )

    def _failed(self) -> None:
        if self.metrics is not None:
            self.metrics.retention_failures.inc()
