"""When a wedding's unconfirmed messages are reminded, and what counts as urgent. Pure: no I/O.

A change of plan three months out can wait an hour between reminders; on the day, five minutes
is already long. So the reminder interval is a function of how many calendar days remain to
the group's wedding date, counted in the wedding's time zone, and reminders stop at the end of
the wedding day whatever happens: after it, nobody can act on "the ceremony moved to 3 pm".
Each group's owner may set the intervals (`EscalationPolicy`); the defaults follow the issue's
example: hourly more than a week out, every 30 minutes in the last week, every 15 in the last
two days, every 5 on the day.
"""

from __future__ import annotations

import itertools
from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from hub.errors import FieldInvalid

Minutes = Annotated[int, msgspec.Meta(ge=1, le=10_080)]  # up to a week
Tier = Literal["more_than_week", "within_week", "last_two_days", "wedding_day"]
TIME_ZONE_MAX = 64


class EscalationPolicy(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How a group reminds organizations that have not acknowledged a message that asked them.

    Reminders go to the users the message mentioned in that organization (all its users when
    it mentioned none); after `escalate_after` reminders, its owners and admins too."""

    enabled: bool = True
    # The wedding's time zone: where its days begin and end (IANA name).
    time_zone: Annotated[str, msgspec.Meta(min_length=1, max_length=TIME_ZONE_MAX)] = "UTC"
    more_than_week_minutes: Minutes = 60
    within_week_minutes: Minutes = 30
    last_two_days_minutes: Minutes = 15
    wedding_day_minutes: Minutes = 5
    escalate_after: Annotated[int, msgspec.Meta(ge=0, le=100)] = 3
    # A group without a wedding date has no day to stop at: it stops after this many.
    max_reminders_without_date: Annotated[int, msgspec.Meta(ge=0, le=1000)] = 24

    def minutes(self, tier: Tier) -> int:
        return getattr(self, f"{tier}_minutes")

    @property
    def zone(self) -> ZoneInfo:
        return zone(self.time_zone, "time_zone")


DEFAULT_POLICY = EscalationPolicy()
_TIERS: tuple[Tier, ...] = ("more_than_week", "within_week", "last_two_days", "wedding_day")


def zone(name: str, field: str) -> ZoneInfo:
    """The IANA time zone `name`, or FieldInvalid naming `field`."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise FieldInvalid(field, f"{name!r} is not an IANA time zone name") from None


def check_policy(policy: EscalationPolicy) -> EscalationPolicy:
    """The policy, or FieldInvalid: an unknown time zone, or intervals that grow as the
    wedding approaches (each tier's interval must be at most the one before it)."""
    policy.zone  # noqa: B018 (raises for an unknown name)
    for earlier, later in itertools.pairwise(_TIERS):
        if policy.minutes(later) > policy.minutes(earlier):
            raise FieldInvalid(
                f"{later}_minutes",
                f"must not be longer than {earlier}_minutes ({policy.minutes(earlier)}): "
                "reminders come more often as the wedding approaches",
            )
    return policy


def policy_of(stored: dict[str, Any] | None) -> EscalationPolicy:
    """A group's stored policy (`vendor_connection_groups.escalation_policy`; None: defaults)."""
    if not stored:
        return DEFAULT_POLICY
    return msgspec.convert(stored, EscalationPolicy)


def days_to_wedding(wedding_date: date, now: datetime, policy: EscalationPolicy) -> int:
    """Calendar days from today to the wedding in its time zone: 0 on the day, < 0 after."""
    return (wedding_date - now.astimezone(policy.zone).date()).days


def tier_of(days: int) -> Tier:
    if days <= 0:
        return "wedding_day"
    if days <= 2:
        return "last_two_days"
    if days <= 7:
        return "within_week"
    return "more_than_week"


def _local_midnight(day: date, policy: EscalationPolicy) -> datetime:
    """The instant `day` begins in the wedding's time zone (as an aware datetime)."""
    return datetime(day.year, day.month, day.day, tzinfo=policy.zone)


def next_reminder(
    policy: EscalationPolicy,
    wedding_date: date | None,
    now: datetime,
    reminders_sent: int,
) -> datetime | None:
    """When the next reminder is due, or None when there is none: the policy is off, the
    wedding day is over (or would be by then), or a dateless group has had its reminders.

    When the next reminder would fall in a later day of a shorter interval, it comes at that
    day's start instead: hourly reminders must not carry an hour past the midnight that begins
    the five-minute wedding day."""
    if not policy.enabled:
        return None
    if wedding_date is None:
        if reminders_sent >= policy.max_reminders_without_date:
            return None
        return now + timedelta(minutes=policy.more_than_week_minutes)
    days = days_to_wedding(wedding_date, now, policy)
    if days < 0:
        return None
    tier = tier_of(days)
    due = now + timedelta(minutes=policy.minutes(tier))
    today = now.astimezone(policy.zone).date()
    tomorrow_begins = _local_midnight(today + timedelta(days=1), policy)
    if due > tomorrow_begins and policy.minutes(tier_of(days - 1)) < policy.minutes(tier):
        due = tomorrow_begins
    if due >= _local_midnight(wedding_date + timedelta(days=1), policy):
        return None  # never past the wedding day
    return due


def is_urgent(
    *,
    priority: str,
    thread_type: str,
    kind: str,
    wedding_date: date | None,
    now: datetime,
    policy: EscalationPolicy = DEFAULT_POLICY,
) -> bool:
    """Whether a notification goes through quiet hours and `urgent_only`: anything in an
    urgent or emergency thread, and a change of plan in the wedding's last two days."""
    if priority == "urgent" or thread_type == "emergency":
        return True
    if kind != "change" or wedding_date is None:
        return False
    return 0 <= days_to_wedding(wedding_date, now, policy) <= 2
