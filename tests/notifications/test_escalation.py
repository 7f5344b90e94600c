"""Escalation: reminders of an unconfirmed message at the policy's intervals, to the named users
first and then to their organization's owners and admins; stopped by a confirmation and by the
end of the wedding day; the group's policy over REST; and the actor's schedule on trio's
autojump clock. Both backends."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import trio

from hub.actors.escalation import Escalation
from hub.storage.acknowledgements import acknowledge
from hub.storage.groups import remove_member, update_group
from hub.storage.notifications import remind_due
from hub.storage.threads import archive_thread
from tests.notifications.conftest import Wedding


async def set_wedding_date(wedding: Wedding, day: date) -> None:
    await wedding.hub.storage.write(
        lambda now: update_group(wedding.group.id, {"wedding_date": day}, now)
    )


async def requests(wedding: Wedding) -> dict[Any, dict]:
    rows = await wedding.rows(
        "SELECT organization_id, state, reminders_sent, next_at, created_at FROM ack_requests"
    )
    return {row["organization_id"]: row for row in rows}


async def remind(wedding: Wedding, now: datetime) -> int:
    return await wedding.hub.storage.write(lambda _: remind_due(now, ()))


async def reasons(wedding: Wedding, member) -> list[str]:
    return [n["reason"] for n in await wedding.notifications_of(member)]


@pytest.fixture
def notification_overrides() -> dict[str, str]:
    return {}


async def test_reminders_go_to_the_named_then_escalate_and_stop_when_confirmed(wedding: Wedding):
    # The hub's own actor reminds too, on the wall clock; the test's times are far ahead of it.
    await set_wedding_date(wedding, datetime.now(UTC).date() + timedelta(days=30))
    reply = await wedding.post(
        wedding.planner, "@Flora Green peonies are out: roses?", kind="change"
    )
    seq = reply.json["seq"]
    owed = await requests(wedding)
    florist, dj = owed[wedding.florist.org_id], owed[wedding.dj.org_id]
    # A month out: hourly, for both organizations asked.
    assert florist["next_at"] - florist["created_at"] == timedelta(hours=1)
    assert dj["next_at"] == florist["next_at"]
    assert (await reasons(wedding, wedding.florist)) == ["ack_request"]
    assert (await reasons(wedding, wedding.florist_admin)) == []

    at = florist["next_at"]
    for number in (1, 2, 3):
        assert await remind(wedding, at) == 2  # both organizations owe it
        owed = await requests(wedding)
        assert owed[wedding.florist.org_id]["reminders_sent"] == number
        assert owed[wedding.florist.org_id]["next_at"] == at + timedelta(hours=1)
        at += timedelta(hours=1)
    assert await reasons(wedding, wedding.florist) == ["ack_request"] + ["reminder"] * 3
    # Nobody at the shop but Flora was named, so nobody else was reminded yet.
    assert await reasons(wedding, wedding.florist_admin) == []
    # The DJ's organization was named by nobody: all its users are reminded.
    assert await reasons(wedding, wedding.dj) == ["ack_request"] + ["reminder"] * 3

    # After three reminders (the default), the shop's admin is told too.
    assert await remind(wedding, at) == 2
    assert (await reasons(wedding, wedding.florist))[-1] == "escalation"
    assert await reasons(wedding, wedding.florist_admin) == ["escalation"]
    board = await wedding.rest.call(
        "GET", f"/threads/{wedding.thread.id}/messages/{seq}/acknowledgements", wedding.planner
    )
    by_org = {e["org_name"]: e for e in board.json["organizations"]}
    assert by_org["Bloom & Co"]["reminders_sent"] == 4

    # The admin confirms for the shop: its reminders stop; the DJ's go on.
    await wedding.hub.storage.write(
        lambda now: acknowledge(
            wedding.thread.id, seq, wedding.florist.org_id, wedding.florist_admin.user_id, now
        )
    )
    at += timedelta(hours=1)
    assert await remind(wedding, at) == 1
    owed = await requests(wedding)
    assert owed[wedding.florist.org_id]["state"] == "acknowledged"
    assert owed[wedding.dj.org_id]["reminders_sent"] == 5
    assert len(await reasons(wedding, wedding.florist)) == 5  # nothing more
    # Every reminder wrote its in-app delivery with a key of its own.
    keys = await wedding.rows("SELECT idempotency_key FROM notification_deliveries")
    assert len({k["idempotency_key"] for k in keys}) == len(keys)


async def test_the_interval_shortens_and_reminders_end_with_the_wedding_day(wedding: Wedding):
    today = datetime.now(UTC).date()
    await set_wedding_date(wedding, today + timedelta(days=3))
    await wedding.post(wedding.planner, "Ceremony moved to 3 pm: rain", kind="change")
    owed = await requests(wedding)
    first = owed[wedding.dj.org_id]
    assert first["next_at"] - first["created_at"] == timedelta(minutes=30)  # within a week

    at = first["next_at"]
    day_before = datetime(today.year, today.month, today.day, 12, tzinfo=UTC) + timedelta(days=2)
    await remind(wedding, max(at, day_before))  # the day before: every 15 minutes
    owed = await requests(wedding)
    dj = owed[wedding.dj.org_id]
    assert dj["next_at"] - max(at, day_before) == timedelta(minutes=15)

    day_end = datetime(today.year, today.month, today.day, tzinfo=UTC) + timedelta(days=4)
    late = day_end - timedelta(minutes=3)  # 23:57 on the day: five more minutes would pass it
    await remind(wedding, late)
    owed = await requests(wedding)
    assert {r["state"] for r in owed.values()} == {"expired"}
    assert all(r["next_at"] is None for r in owed.values())
    assert await remind(wedding, day_end + timedelta(hours=1)) == 0


async def test_the_policy_is_read_by_members_and_set_by_the_owner(wedding: Wedding):
    path = f"/groups/{wedding.group.id}/escalation-policy"
    default = await wedding.rest.call("GET", path, wedding.dj)
    assert default.status == 200
    assert (default.json["wedding_day_minutes"], default.json["escalate_after"]) == (5, 3)
    # The hub says who may change it, for a client to offer only that.
    assert default.json["may_change"] is False
    owner = await wedding.rest.call("GET", path, wedding.planner)
    assert owner.json["may_change"] is True
    refused = await wedding.rest.call("PUT", path, wedding.dj, json_body={"escalate_after": 1})
    assert refused.status == 403
    changed = await wedding.rest.call(
        "PUT", path, wedding.planner, json_body={"escalate_after": 1, "time_zone": "Europe/Lisbon"}
    )
    assert changed.status == 200, changed.body
    assert (changed.json["escalate_after"], changed.json["time_zone"]) == (1, "Europe/Lisbon")
    assert changed.json["wedding_day_minutes"] == 5  # kept
    for body, field in [
        ({"last_two_days_minutes": 90}, "last_two_days_minutes"),
        ({"time_zone": "Nowhere/City"}, "time_zone"),
        ({"wedding_day_minutes": 0}, "wedding_day_minutes"),
        ({"hourly": True}, "hourly"),
    ]:
        bad = await wedding.rest.call("PUT", path, wedding.planner, json_body=body)
        assert bad.status == 422, (body, bad.body)
        assert field in bad.body.decode()
    assert (await wedding.rest.call("GET", path, wedding.outsider)).status == 404
    kept = await wedding.rest.call("GET", path, wedding.florist)
    assert kept.json == {**changed.json, "may_change": False}

    # The new policy applies: one reminder, then the admins.
    await set_wedding_date(wedding, datetime.now(UTC).date() + timedelta(days=30))
    await wedding.post(wedding.planner, "Tables are round now", kind="change")
    owed = await requests(wedding)
    at = owed[wedding.florist.org_id]["next_at"]
    await remind(wedding, at)
    await remind(wedding, at + timedelta(hours=1))
    # Nobody was named, so the whole shop was reminded, and then its admin told as escalation.
    assert await reasons(wedding, wedding.florist_admin) == [
        "ack_request",
        "reminder",
        "escalation",
    ]


async def test_an_archived_thread_or_a_departed_organization_is_not_reminded(wedding: Wedding):
    await set_wedding_date(wedding, datetime.now(UTC).date() + timedelta(days=30))
    await wedding.post(wedding.planner, "Photos move to the garden", kind="change")
    owed = await requests(wedding)
    at = owed[wedding.dj.org_id]["next_at"]
    await wedding.hub.storage.write(
        lambda now: remove_member(
            group_id=wedding.group.id, organization_id=wedding.dj.org_id, now=now
        )
    )
    assert await remind(wedding, at) == 1  # the florist only
    owed = await requests(wedding)
    assert owed[wedding.dj.org_id]["state"] == "expired"
    assert await reasons(wedding, wedding.dj) == ["ack_request"]

    await wedding.hub.storage.write(lambda now: archive_thread(wedding.thread.id, now))
    assert await remind(wedding, at + timedelta(hours=1)) == 0
    owed = await requests(wedding)
    assert {r["state"] for r in owed.values()} == {"expired"}
    assert await reasons(wedding, wedding.florist) == ["ack_request", "reminder"]


class FakeReminders:
    """Due at the given moments; records when the actor looked."""

    def __init__(self, due: list[datetime]) -> None:
        self.due = sorted(due)
        self.looked: list[datetime] = []

    async def remind(self, now: datetime) -> int:
        self.looked.append(now)
        count = sum(1 for d in self.due if d <= now)
        self.due = [d for d in self.due if d > now]
        return count

    async def next_due(self) -> datetime | None:
        return self.due[0] if self.due else None


async def test_the_actor_wakes_when_the_next_reminder_is_due(autojump_clock):
    start = datetime(2027, 6, 12, 9, tzinfo=UTC)
    due = [start + timedelta(minutes=m) for m in (5, 10, 12)]
    reminders = FakeReminders(due)
    actor = Escalation(reminders, poll_s=3600, wall_clock=lambda: start)
    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run)
        await trio.sleep(13 * 60)
        nursery.cancel_scope.cancel()
    assert actor.reminded == 3
    assert reminders.looked == [start, *due]
