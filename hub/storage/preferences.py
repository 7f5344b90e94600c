"""A user's notification preferences and the threads they muted.

No row means the defaults (every channel on, no quiet hours, UTC): most users never change
them, and their notifications are decided with a LEFT JOIN (`hub.storage.notifications`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from hub.storage.sql import Op, execute, fetchrow


class NotificationPreferences(msgspec.Struct, frozen=True):
    in_app_enabled: bool = True
    email_enabled: bool = True
    webhook_enabled: bool = True
    urgent_only: bool = False
    quiet_hours_start: str | None = None  # 'HH:MM', local to time_zone
    quiet_hours_end: str | None = None
    time_zone: str = "UTC"
    mention_alerts: bool = True
    # When the user agreed to notification e-mail; e-mail goes out only after that.
    consent_at: datetime | None = None
    updated_at: datetime | None = None


PREFERENCE_FIELDS = (
    "in_app_enabled",
    "email_enabled",
    "webhook_enabled",
    "urgent_only",
    "quiet_hours_start",
    "quiet_hours_end",
    "time_zone",
    "mention_alerts",
    "consent_at",
)

_COLUMNS = ", ".join(PREFERENCE_FIELDS)


def get_preferences(user_id: UUID) -> Op[NotificationPreferences]:
    row = yield fetchrow(
        f"SELECT {_COLUMNS}, updated_at FROM vendor_notification_preferences "  # noqa: S608 (constant columns)
        "WHERE user_id = $1",
        user_id,
    )
    return NotificationPreferences() if row is None else NotificationPreferences(**row)


def update_preferences(
    user_id: UUID, changes: dict[str, Any], now: datetime
) -> Op[NotificationPreferences]:
    """Apply `changes` (fields of `NotificationPreferences`) over what is stored, in one
    transaction, so two updates of different fields both stay."""
    current = yield from get_preferences(user_id)
    merged = msgspec.structs.replace(current, **changes, updated_at=now)
    values = [getattr(merged, name) for name in PREFERENCE_FIELDS]
    assignments = ", ".join(f"{name} = excluded.{name}" for name in PREFERENCE_FIELDS)
    placeholders = ", ".join(f"${i}" for i in range(2, len(PREFERENCE_FIELDS) + 3))
    yield execute(
        f"INSERT INTO vendor_notification_preferences (user_id, {_COLUMNS}, updated_at) "  # noqa: S608 (constant columns)
        f"VALUES ($1, {placeholders}) "
        f"ON CONFLICT (user_id) DO UPDATE SET {assignments}, updated_at = excluded.updated_at",
        user_id,
        *values,
        now,
    )
    return merged


def set_mute(thread_id: UUID, user_id: UUID, muted: bool, now: datetime) -> Op[datetime | None]:
    """Mute or unmute a thread for a user; returns since when it is muted (None: it is not).
    Muting twice keeps the first moment."""
    if muted:
        yield execute(
            "INSERT INTO thread_mutes (thread_id, user_id, muted_at) VALUES ($1, $2, $3) "
            "ON CONFLICT (thread_id, user_id) DO NOTHING",
            thread_id,
            user_id,
            now,
        )
    else:
        yield execute(
            "DELETE FROM thread_mutes WHERE thread_id = $1 AND user_id = $2", thread_id, user_id
        )
    return (yield from muted_since(thread_id, user_id))


def muted_since(thread_id: UUID, user_id: UUID) -> Op[datetime | None]:
    row = yield fetchrow(
        "SELECT muted_at FROM thread_mutes WHERE thread_id = $1 AND user_id = $2",
        thread_id,
        user_id,
    )
    return None if row is None else row["muted_at"]
