"""The notification dispatcher: delivers the outbox at least once (docs/notifications.md).

One actor per hub node, owned by `run_hub`'s nursery. Each pass claims the due deliveries
(`hub.storage.outbox.claim_due`: a lease, so a node killed mid-delivery loses nothing), reads
what they are about, sends them through their channels at most `concurrency` at a time, and
records every outcome in one write: delivered; retried after an exponential backoff with jitter;
held, for e-mail and webhooks, until the users' quiet hours end (urgent ones go through); or
dead after `max_attempts`, or at once when the failure is permanent, for an operator to list and
retry (`hub notifications dead-letter`).

A committed message that wrote deliveries wakes the dispatcher (`kick`); otherwise it looks
again when the earliest pending delivery is due, and at least every `poll_s` (deliveries other
nodes wrote). Times are read on Trio's clock from a wall-clock moment taken at start, as the
attachment sweep does, so a test moves them with trio's autojump clock. Every delivery carries
an idempotency key: a receiver that sees one twice (a lease that ran out while a slow receiver
was still answering) knows it is the same notification.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import trio

from hub.errors import HubError
from hub.metrics import Metrics
from hub.notifications.failures import DeliveryFailed
from hub.notifications.quiet import quiet_until
from hub.storage import Storage
from hub.storage.outbox import (
    Claimed,
    Hook,
    Outcome,
    Subject,
    claim_due,
    hooks,
    message_contexts,
    message_rows_by_id,
    next_due,
    quiet_hours_of,
    record_outcomes,
    subjects,
)
from hub.storage.records import Message

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Attempt n (1, 2, ...) that failed is tried again after base·2^(n-1) seconds, capped,
    and jittered down by up to half, so receivers that failed together are not all tried again
    in the same second; after `max_attempts` failures the delivery is dead."""

    base_s: float = 10.0
    cap_s: float = 3600.0
    max_attempts: int = 10

    def delay_s(self, attempt: int, rng: random.Random) -> float:
        ceiling = min(self.cap_s, self.base_s * 2 ** (attempt - 1))
        return ceiling * rng.uniform(0.5, 1.0)


@dataclass(frozen=True, slots=True)
class Work:
    """A claimed delivery with what sending it needs. `message` is None when it is gone (its
    thread's history purged); `quiet_until` is when its users' quiet hours end, if all of them
    are in quiet hours now (None: someone is not)."""

    claimed: Claimed
    now: datetime
    subject: Subject | None = None
    message: Message | None = None
    hook: Hook | None = None
    context: dict | None = None
    quiet_until: datetime | None = None


class Deliverer(Protocol):
    """One channel: send `work` or raise DeliveryFailed (anything else counts as a transient
    failure, logged with its traceback)."""

    async def deliver(self, work: Work) -> None: ...


@dataclass
class DispatcherStats:
    delivered: int = 0
    retry: int = 0
    held: int = 0
    dead: int = 0
    passes: int = 0

    def count(self, outcome: Outcome) -> None:
        setattr(self, outcome.kind, getattr(self, outcome.kind) + 1)


@dataclass
class Dispatcher:
    storage: Storage
    channels: Mapping[str, Deliverer]
    retry: RetryPolicy = RetryPolicy()
    batch: int = 100
    lease_s: float = 120.0
    poll_s: float = 5.0
    concurrency: int = 8
    rng: random.Random = field(default_factory=random.Random)
    wall_clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    stats: DispatcherStats = field(default_factory=DispatcherStats)
    # What `now` reads instead of Trio's clock (tests that call `run_once` themselves).
    clock: Callable[[], datetime] | None = None
    metrics: Metrics | None = None

    def __post_init__(self) -> None:
        self._wakeup = trio.Event()
        self._anchor: tuple[datetime, float] | None = None

    def kick(self) -> None:
        """Deliveries were just committed: look now rather than at the next poll."""
        self._wakeup.set()

    def now(self) -> datetime:
        if self.clock is not None:
            return self.clock()
        assert self._anchor is not None, "the dispatcher is running"
        wall, trio_at = self._anchor
        return wall + timedelta(seconds=trio.current_time() - trio_at)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self._anchor = (self.wall_clock(), trio.current_time())
        task_status.started()
        while True:
            self._wakeup = trio.Event()
            try:
                handled = await self.run_once()
                if handled >= self.batch:
                    continue  # more are due
                due = await self.storage.read(next_due())
            except HubError as exc:  # the database is down or slow: look again later
                log.warning("notifications: dispatch failed, trying again: %s", exc)
                due = None
            except Exception:
                # A defect here must not take the hub's messaging down with it: logged with
                # its traceback, and the pass is tried again after the poll (its claims' leases
                # run out, so nothing claimed is lost).
                log.exception("notifications: dispatch pass failed, trying again")
                due = None
            delay = self.poll_s
            if due is not None:
                delay = min(delay, max(0.0, (due - self.now()).total_seconds()))
            with trio.move_on_after(delay):
                await self._wakeup.wait()

    async def run_once(self) -> int:
        """One pass: claim what is due, send it, record the outcomes; how many were claimed."""
        now = self.now()
        claimed = await self.storage.write(
            lambda _: claim_due(now, now + timedelta(seconds=self.lease_s), self.batch)
        )
        if not claimed:
            return 0
        self.stats.passes += 1
        work = await self._prepare(claimed, now)
        outcomes: list[Outcome] = []
        limiter = trio.CapacityLimiter(self.concurrency)
        async with trio.open_nursery() as nursery:
            for item in work:
                nursery.start_soon(self._attempt, item, limiter, outcomes)
        finished = self.now()  # read here: the op runs in the storage's thread
        await self.storage.write(lambda _: record_outcomes(outcomes, finished))
        channel_of = {c.id: c.channel for c in claimed}
        for outcome in outcomes:
            self.stats.count(outcome)
            if self.metrics is not None:
                self.metrics.notification_deliveries.labels(
                    channel_of[outcome.id], outcome.kind
                ).inc()
        return len(claimed)

    async def _prepare(self, claimed: Sequence[Claimed], now: datetime) -> list[Work]:
        notes = await self.storage.read(
            subjects([c.notification_id for c in claimed if c.notification_id is not None])
        )
        hooked = await self.storage.read(
            hooks([c.webhook_id for c in claimed if c.webhook_id is not None])
        )
        message_ids = [s.message_id for s in notes.values()]
        message_ids += [c.payload["message_id"] for c in claimed if c.channel == "webhook"]
        opened = await self.storage.sealing.open_rows(
            await self.storage.read(message_rows_by_id(message_ids))
        )
        messages = {m.id: m for m in opened}
        contexts = await self.storage.read(
            message_contexts([c.payload["message_id"] for c in claimed if c.channel == "webhook"])
        )
        quiet_users = await self.storage.read(
            quiet_hours_of(
                [
                    u
                    for c in claimed
                    if c.channel == "webhook"
                    for u in c.payload.get("user_ids", [])
                ]
            )
        )
        work = []
        for item in claimed:
            if item.channel == "webhook":
                message_id = item.payload["message_id"]
                ends = [
                    _quiet_end(*quiet_users.get(UUID(u), (None, None, "UTC")), now)
                    for u in item.payload.get("user_ids", [])
                ]
                work.append(
                    Work(
                        item,
                        now,
                        message=messages.get(message_id),
                        hook=hooked.get(item.webhook_id),  # type: ignore[arg-type]
                        context=contexts.get(message_id),
                        quiet_until=min(ends) if ends and None not in ends else None,  # type: ignore[type-var]
                    )
                )
            else:
                subject = notes.get(item.notification_id)  # type: ignore[arg-type]
                until = None
                message = None
                if subject is not None:
                    until = _quiet_end(
                        subject.quiet_hours_start, subject.quiet_hours_end, subject.time_zone, now
                    )
                    message = messages.get(subject.message_id)
                work.append(Work(item, now, subject=subject, message=message, quiet_until=until))
        return work

    async def _attempt(
        self, work: Work, limiter: trio.CapacityLimiter, outcomes: list[Outcome]
    ) -> None:
        claimed = work.claimed
        if work.message is not None and work.message.deleted_at is not None:
            # Nothing to tell about what its sender (or the group's owner) took back.
            outcomes.append(Outcome(claimed.id, "dead", error="the message was deleted"))
            return
        if work.quiet_until is not None and not claimed.urgent and claimed.channel != "in_app":
            outcomes.append(Outcome(claimed.id, "held", at=work.quiet_until, error="quiet hours"))
            return
        channel = self.channels.get(claimed.channel)
        if channel is None:
            outcomes.append(
                Outcome(claimed.id, "dead", error=f"no {claimed.channel} channel on this hub")
            )
            return
        async with limiter:
            try:
                await channel.deliver(work)
            except DeliveryFailed as exc:
                outcomes.append(self._failed(claimed, exc.reason, permanent=exc.permanent))
                return
            except Exception as exc:
                log.exception("notifications: delivery %s failed", claimed.idempotency_key)
                outcomes.append(self._failed(claimed, f"internal error: {type(exc).__name__}"))
                return
        outcomes.append(Outcome(claimed.id, "delivered"))

    def _failed(self, claimed: Claimed, reason: str, *, permanent: bool = False) -> Outcome:
        if permanent or claimed.attempts >= self.retry.max_attempts:
            why = reason if permanent else f"{reason} (after {claimed.attempts} attempts)"
            log.warning("notifications: %s is dead: %s", claimed.idempotency_key, why)
            return Outcome(claimed.id, "dead", error=why)
        delay = self.retry.delay_s(claimed.attempts, self.rng)
        return Outcome(claimed.id, "retry", at=self.now() + timedelta(seconds=delay), error=reason)


def _quiet_end(
    start: str | None, end: str | None, time_zone: str, now: datetime
) -> datetime | None:
    try:
        zone = ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    until = quiet_until(start, end, zone, now)
    return None if until is None else until.astimezone(UTC)
