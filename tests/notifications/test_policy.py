"""The escalation policy: reminder intervals by days to the wedding in its own time zone, the
cut at the start of a shorter day, the end of the wedding day, dateless groups, urgency, and the
checks on a policy a group owner sets."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import msgspec
import pytest

from hub.errors import FieldInvalid
from hub.notifications.policy import (
    DEFAULT_POLICY,
    EscalationPolicy,
    check_policy,
    is_urgent,
    next_reminder,
    policy_of,
)

WEDDING = date(2027, 6, 12)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


@pytest.mark.parametrize(
    ("now", "minutes"),
    [
        ("2027-05-01T10:00:00+00:00", 60),  # six weeks out
        ("2027-06-04T10:00:00+00:00", 60),  # eight days out
        ("2027-06-05T10:00:00+00:00", 30),  # seven days out
        ("2027-06-10T10:00:00+00:00", 15),  # two days out
        ("2027-06-11T10:00:00+00:00", 15),  # the day before
        ("2027-06-12T10:00:00+00:00", 5),  # the day
    ],
)
def test_intervals_shorten_as_the_wedding_approaches(now: str, minutes: int):
    assert next_reminder(DEFAULT_POLICY, WEDDING, at(now), 0) == at(now) + timedelta(
        minutes=minutes
    )


def test_a_reminder_never_carries_past_the_midnight_of_a_shorter_day():
    # 23:30 the day before: 15 minutes would be 23:45, fine; at 23:50 it would be 00:05 on
    # the day, but the day's first reminder is due as it begins.
    assert next_reminder(DEFAULT_POLICY, WEDDING, at("2027-06-11T23:30:00+00:00"), 3) == at(
        "2027-06-11T23:45:00+00:00"
    )
    assert next_reminder(DEFAULT_POLICY, WEDDING, at("2027-06-11T23:50:00+00:00"), 3) == at(
        "2027-06-12T00:00:00+00:00"
    )


def test_reminders_end_with_the_wedding_day_in_its_time_zone():
    paris = EscalationPolicy(time_zone="Europe/Paris")
    # 23:57 in Paris on the day (21:57 UTC): the next would be past midnight in Paris.
    assert next_reminder(paris, WEDDING, at("2027-06-12T21:57:00+00:00"), 40) is None
    # 23:50 UTC is already the next day in Paris.
    assert next_reminder(paris, WEDDING, at("2027-06-12T23:50:00+00:00"), 40) is None
    # The same instant in UTC is still the day: five minutes more.
    assert next_reminder(DEFAULT_POLICY, WEDDING, at("2027-06-12T21:57:00+00:00"), 40) == at(
        "2027-06-12T22:02:00+00:00"
    )
    assert next_reminder(DEFAULT_POLICY, WEDDING, at("2027-06-13T08:00:00+00:00"), 0) is None


def test_days_are_counted_across_a_daylight_saving_change():
    """New York springs forward on 2027-03-14 (23 hours long): the day still begins at local
    midnight, 05:00 UTC the day before it and 04:00 UTC after it."""
    policy = EscalationPolicy(time_zone="America/New_York")
    wedding = date(2027, 3, 14)
    # 23:50 on the 13th in New York (04:50 UTC on the 14th): the wedding day begins at 05:00 UTC.
    assert next_reminder(policy, wedding, at("2027-03-14T04:50:00+00:00"), 0) == at(
        "2027-03-14T05:00:00+00:00"
    )
    # The wedding day ends at midnight EDT, 04:00 UTC on the 15th.
    assert next_reminder(policy, wedding, at("2027-03-15T03:54:00+00:00"), 0) == at(
        "2027-03-15T03:59:00+00:00"
    )
    assert next_reminder(policy, wedding, at("2027-03-15T03:56:00+00:00"), 0) is None


def test_a_group_without_a_date_stops_after_its_reminders():
    now = at("2027-01-01T12:00:00+00:00")
    assert next_reminder(DEFAULT_POLICY, None, now, 0) == now + timedelta(hours=1)
    assert next_reminder(DEFAULT_POLICY, None, now, 23) == now + timedelta(hours=1)
    assert next_reminder(DEFAULT_POLICY, None, now, 24) is None
    assert next_reminder(EscalationPolicy(enabled=False), WEDDING, now, 0) is None


def test_what_is_urgent():
    now = at("2027-06-10T12:00:00+00:00")
    common = {"wedding_date": WEDDING, "now": now}
    assert is_urgent(priority="urgent", thread_type="general", kind="text", **common)
    assert is_urgent(priority="low", thread_type="emergency", kind="text", **common)
    assert is_urgent(priority="normal", thread_type="timeline", kind="change", **common)
    assert not is_urgent(priority="normal", thread_type="timeline", kind="text", **common)
    far = {"wedding_date": WEDDING, "now": at("2027-05-01T12:00:00+00:00")}
    assert not is_urgent(priority="high", thread_type="timeline", kind="change", **far)
    assert not is_urgent(
        priority="normal", thread_type="general", kind="change", wedding_date=None, now=now
    )


def test_a_policy_is_checked():
    assert policy_of(None) is DEFAULT_POLICY
    assert policy_of({"wedding_day_minutes": 2}).wedding_day_minutes == 2
    with pytest.raises(FieldInvalid, match="IANA"):
        check_policy(EscalationPolicy(time_zone="Mars/Olympus"))
    with pytest.raises(FieldInvalid, match="must not be longer than within_week_minutes"):
        check_policy(EscalationPolicy(within_week_minutes=20, last_two_days_minutes=25))
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"wedding_day_minutes": 0}, EscalationPolicy)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"hourly": 1}, EscalationPolicy)
