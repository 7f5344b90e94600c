"""The retention actor on trio's autojump clock: it passes every interval with "now" read from
Trio's clock, so a wedding is archived and purged at the pass that reaches its day and not the
one before; a pass that fails (the database down) is logged and the next one runs; it ends with
its nursery. Its work is a fake holding groups' retention records, decided by the same rules
the stored pass uses (`RetentionState`)."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import msgspec
import trio

from hub.actors.retention import PassReport, Retention
from hub.errors import StorageUnavailable
from hub.metrics import Metrics
from hub.storage.retention import RetentionState

HOUR = 3600.0
START = datetime(2031, 6, 13, tzinfo=UTC)  # the day before the wedding, at midnight


def group(**fields) -> RetentionState:
    defaults = {"retention_days_after_wedding": 365, "archive_days_after_wedding": 30}
    return RetentionState(
        group_id=uuid.uuid4(),
        status="active",
        created_at=START - timedelta(days=200),
        **{**defaults, **fields},
    )


@dataclass
class FakeWork:
    groups: list[RetentionState]
    passes: list[datetime] = field(default_factory=list)
    archived_at: dict[uuid.UUID, datetime] = field(default_factory=dict)
    purged_at: dict[uuid.UUID, datetime] = field(default_factory=dict)
    fail_passes: set[int] = field(default_factory=set)

    async def run_pass(self, now: datetime) -> PassReport:
        self.passes.append(now)
        if len(self.passes) in self.fail_passes:
            raise StorageUnavailable("the database is unavailable")
        report = PassReport()
        for index, state in enumerate(self.groups):
            if state.purge_is_due(now):
                self.groups[index] = msgspec.structs.replace(
                    state, status="archived", purged_at=now
                )
                self.purged_at[state.group_id] = now
                report.purged.append(state.group_id)
            elif state.archive_is_due(now):
                self.groups[index] = msgspec.structs.replace(state, status="archived")
                self.archived_at[state.group_id] = now
                report.archived.append(state.group_id)
        return report


async def run_for(actor: Retention, seconds: float) -> None:
    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run)
        await trio.sleep(seconds)
        nursery.cancel_scope.cancel()


async def test_a_wedding_is_archived_and_purged_at_the_passes_that_reach_its_days(autojump_clock):
    wedding = group(wedding_date=date(2031, 6, 14))
    held = group(wedding_date=date(2031, 6, 14), legal_hold_at=START)
    work = FakeWork([wedding, held])
    actor = Retention(work, interval_s=HOUR, wall_clock=lambda: START)

    await run_for(actor, 367 * 24 * HOUR)

    archive_day = datetime(2031, 7, 14, tzinfo=UTC)  # 30 days after the wedding
    purge_day = datetime(2032, 6, 13, tzinfo=UTC)  # 365 days after (2032 is a leap year)
    assert work.archived_at == {wedding.group_id: archive_day}
    assert work.purged_at == {wedding.group_id: purge_day}
    # The pass an hour before each found nothing due: it is the day, not a day early.
    assert archive_day - timedelta(hours=1) in work.passes
    assert purge_day - timedelta(hours=1) in work.passes
    # Passes are an interval apart, from one interval after the start, on Trio's clock.
    assert work.passes[0] == START + timedelta(hours=1)
    assert work.passes[1] - work.passes[0] == timedelta(hours=1)
    assert actor.passes == len(work.passes)


async def test_a_failed_pass_is_logged_and_the_next_interval_tries_again(autojump_clock, caplog):
    wedding = group(wedding_date=date(2031, 6, 14), archive_days_after_wedding=0)
    work = FakeWork([wedding], fail_passes={24, 25})  # the database is down on the wedding day
    metrics = Metrics("test-node")
    actor = Retention(work, interval_s=HOUR, wall_clock=lambda: START, metrics=metrics)

    with caplog.at_level(logging.WARNING, logger="hub.actors.retention"):
        await run_for(actor, 30.5 * HOUR)

    wedding_day = datetime(2031, 6, 14, tzinfo=UTC)
    assert work.passes[23] == wedding_day  # due, but failed; so did the next
    assert work.archived_at == {wedding.group_id: wedding_day + timedelta(hours=2)}
    assert len(work.passes) == 30  # it kept its schedule through the failures
    assert sum("retention: pass failed" in r.getMessage() for r in caplog.records) == 2
    assert metrics.retention_failures._value.get() == 2


async def test_a_defect_in_a_pass_does_not_end_the_actor(autojump_clock, caplog):
    class Broken:
        calls = 0

        async def run_pass(self, now: datetime) -> PassReport:
            self.calls += 1
            raise RuntimeError("a bug")

    broken = Broken()
    with caplog.at_level(logging.ERROR, logger="hub.actors.retention"):
        await run_for(Retention(broken, interval_s=HOUR, wall_clock=lambda: START), 3.5 * HOUR)
    assert broken.calls == 3


async def test_the_actor_ends_with_its_nursery_even_mid_pass(autojump_clock):
    started, finished = trio.Event(), []

    class Slow:
        async def run_pass(self, now: datetime) -> PassReport:
            started.set()
            await trio.sleep(10 * HOUR)
            finished.append(now)
            return PassReport()

    async with trio.open_nursery() as nursery:
        await nursery.start(Retention(Slow(), interval_s=HOUR, wall_clock=lambda: START).run)
        await started.wait()
        nursery.cancel_scope.cancel()
    assert finished == []
