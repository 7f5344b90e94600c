"""Quiet hours: when a user asked not to be disturbed, in their own time zone. Pure: no I/O.

Hours are local wall-clock times ('22:00' to '07:00' spans midnight). They are turned into an
instant only for the day at hand, through the zone's rules, so a daylight-saving change moves
them with the clock on the wall, as the user expects: quiet until 07:00 is 07:00 local on the
morning after the change too. A wall time that does not exist that day (the hour skipped in
spring) is read as the instant the clock shows it, one hour later in UTC terms per PEP 495.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo


def parse_hhmm(value: str) -> time:
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def quiet_until(
    start: str | None, end: str | None, zone: ZoneInfo, now: datetime
) -> datetime | None:
    """When the quiet hours that hold `now` end (an aware datetime), or None when `now` is
    outside them (or there are none)."""
    if start is None or end is None or start == end:
        return None
    begin, finish = parse_hhmm(start), parse_hhmm(end)
    local = now.astimezone(zone)
    today = local.date()
    clock = local.time().replace(tzinfo=None)
    if begin < finish:  # within one day, e.g. 13:00-14:00
        if begin <= clock < finish:
            return _at(today, finish, zone)
        return None
    # Across midnight, e.g. 22:00-07:00.
    if clock >= begin:
        return _at(today + timedelta(days=1), finish, zone)
    if clock < finish:
        return _at(today, finish, zone)
    return None


def _at(day, wall: time, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, wall, tzinfo=zone)
