"""Notification preferences and muted threads: `GET`/`PUT /me/notification-preferences`,
`GET`/`PUT /threads/{id}/mute`.

What they change is read when a message is stored (`hub.storage.notifications` decides who is
told, and through which channels) and when a delivery is due (quiet hours), so a change applies
to the next notification, not to those already on their way.
"""

from __future__ import annotations

from typing import Any

from msgspec import UNSET
from quart import Blueprint
from quart_schema import validate_request

from hub.access import authorize_thread
from hub.errors import FieldInvalid
from hub.http.identity import audit, current_principal, current_storage
from hub.http.openapi import errors, responds
from hub.http.params import path_id
from hub.http.schemas import (
    ChannelsOut,
    MuteIn,
    MuteOut,
    PreferencesIn,
    PreferencesOut,
    QuietHoursOut,
)
from hub.notifications.policy import zone
from hub.storage.preferences import (
    NotificationPreferences,
    get_preferences,
    muted_since,
    set_mute,
    update_preferences,
)

blueprint = Blueprint("preferences", __name__)


@blueprint.get("/me/notification-preferences")
@errors()
@responds(PreferencesOut)
async def preferences() -> PreferencesOut:
    """The caller's notification preferences (the defaults until they change one)."""
    principal = current_principal()
    return _out(await current_storage().read(get_preferences(principal.user_id)))


@blueprint.put("/me/notification-preferences")
@errors(422)
@responds(PreferencesOut)
@validate_request(PreferencesIn)
async def put_preferences(data: PreferencesIn) -> PreferencesOut:
    """Change notification preferences: channels (in-app, e-mail, webhook) on or off,
    `urgent_only`, quiet hours in an IANA `time_zone` (urgent notifications go through them),
    mention alerts, and consent to e-mail. Fields left out stay as they are."""
    changes = _changes(data)
    principal = current_principal()
    details: dict[str, Any] = {"fields": sorted(changes)}
    if data.email_consent is not UNSET:
        details["email_consent"] = data.email_consent  # consent is what an auditor asks about
    entry = audit("preferences.update", "user", principal.user_id, group_id=None, details=details)
    stored = await current_storage().write(
        lambda now: update_preferences(principal.user_id, _stamped(changes, now), now),
        audit=[entry],
    )
    return _out(stored)


def _changes(data: PreferencesIn) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if data.channels is not UNSET:
        for name in ("in_app", "email", "webhook"):
            value = getattr(data.channels, name)
            if value is not UNSET:
                changes[f"{name}_enabled"] = value
    for name in ("urgent_only", "mention_alerts"):
        value = getattr(data, name)
        if value is not UNSET:
            changes[name] = value
    if data.time_zone is not UNSET:
        zone(data.time_zone, "time_zone")
        changes["time_zone"] = data.time_zone
    if data.quiet_hours is None:
        changes["quiet_hours_start"] = changes["quiet_hours_end"] = None
    elif data.quiet_hours is not UNSET:
        if data.quiet_hours.start == data.quiet_hours.end:
            raise FieldInvalid("quiet_hours", "start and end must differ")
        changes["quiet_hours_start"] = data.quiet_hours.start
        changes["quiet_hours_end"] = data.quiet_hours.end
    if data.email_consent is not UNSET:
        changes["consent_at"] = True if data.email_consent else None
    return changes


def _stamped(changes: dict[str, Any], now: Any) -> dict[str, Any]:
    """Consent is stamped with the commit's moment (True above stands for "now")."""
    if changes.get("consent_at") is True:
        return {**changes, "consent_at": now}
    return changes


def _out(prefs: NotificationPreferences) -> PreferencesOut:
    principal = current_principal()
    smtp = "email" in current_storage().outward
    quiet = None
    if prefs.quiet_hours_start is not None and prefs.quiet_hours_end is not None:
        quiet = QuietHoursOut(start=prefs.quiet_hours_start, end=prefs.quiet_hours_end)
    return PreferencesOut(
        channels=ChannelsOut(
            in_app=prefs.in_app_enabled, email=prefs.email_enabled, webhook=prefs.webhook_enabled
        ),
        urgent_only=prefs.urgent_only,
        time_zone=prefs.time_zone,
        mention_alerts=prefs.mention_alerts,
        email_active=smtp
        and prefs.email_enabled
        and prefs.consent_at is not None
        and principal.email is not None,
        quiet_hours=quiet,
        consent_at=prefs.consent_at,
        email_address=principal.email,
        updated_at=prefs.updated_at,
    )


@blueprint.get("/threads/<thread_id>/mute")
@errors(404, 422)
@responds(MuteOut)
async def mute_state(thread_id: str) -> MuteOut:
    """Whether the caller muted this thread."""
    tid = path_id("thread_id", thread_id)
    principal = current_principal()
    storage = current_storage()
    await authorize_thread(storage, principal, tid, "mute")
    since = await storage.read(muted_since(tid, principal.user_id))
    return MuteOut(thread_id=tid, muted=since is not None, muted_at=since)


@blueprint.put("/threads/<thread_id>/mute")
@errors(404, 422)
@responds(MuteOut)
@validate_request(MuteIn)
async def mute(thread_id: str, data: MuteIn) -> MuteOut:
    """Mute (or unmute) a thread for the caller: its mentions stop notifying them. A message
    that asks their organization to acknowledge still does, and so do its reminders."""
    tid = path_id("thread_id", thread_id)
    principal = current_principal()
    storage = current_storage()
    await authorize_thread(storage, principal, tid, "mute")
    since = await storage.write(lambda now: set_mute(tid, principal.user_id, data.muted, now))
    return MuteOut(thread_id=tid, muted=since is not None, muted_at=since)
