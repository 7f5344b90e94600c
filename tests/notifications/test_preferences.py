"""Notification preferences and mutes: the API's rules over real sockets (both backends), what
they change in the notifications a message writes, and quiet hours across time zones."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from hub.auth import issue_token
from hub.notifications.quiet import quiet_until
from tests.factories import Member
from tests.notifications.conftest import Wedding

PREFS = "/me/notification-preferences"


async def put(wedding: Wedding, member: Member, body: dict):
    return await wedding.rest.call("PUT", PREFS, member, json_body=body)


async def test_defaults_then_partial_changes(wedding: Wedding):
    reply = await wedding.rest.call("GET", PREFS, wedding.florist)
    assert reply.status == 200
    assert reply.json["channels"] == {"in_app": True, "email": True, "webhook": True}
    assert reply.json["quiet_hours"] is None
    assert (reply.json["time_zone"], reply.json["urgent_only"]) == ("UTC", False)
    assert reply.json["email_active"] is False  # no consent, no address, no SMTP server

    changed = await put(
        wedding,
        wedding.florist,
        {"quiet_hours": {"start": "22:00", "end": "07:00"}, "time_zone": "Europe/Madrid"},
    )
    assert changed.status == 200, changed.body
    again = await put(wedding, wedding.florist, {"channels": {"webhook": False}})
    assert again.json["quiet_hours"] == {"start": "22:00", "end": "07:00"}
    assert again.json["time_zone"] == "Europe/Madrid"
    assert again.json["channels"] == {"in_app": True, "email": True, "webhook": False}
    cleared = await put(wedding, wedding.florist, {"quiet_hours": None})
    assert cleared.json["quiet_hours"] is None
    assert (await wedding.rest.call("GET", PREFS, wedding.florist)).json == cleared.json
    # Someone else's preferences are untouched.
    assert (await wedding.rest.call("GET", PREFS, wedding.dj)).json["time_zone"] == "UTC"


@pytest.mark.parametrize(
    ("body", "names"),
    [
        ({"time_zone": "Mars/Olympus"}, "time_zone"),
        ({"quiet_hours": {"start": "25:00", "end": "07:00"}}, "start"),
        ({"quiet_hours": {"start": "07:00", "end": "07:00"}}, "quiet_hours"),
        ({"quiet_hours": {"start": "22:00"}}, "end"),
        ({"channels": {"sms": True}}, "sms"),
        ({"urgent_only": "yes"}, "urgent_only"),
    ],
)
async def test_bad_preferences_are_refused_naming_the_field(wedding: Wedding, body, names):
    reply = await put(wedding, wedding.florist, body)
    assert reply.status == 422, reply.body
    assert names in reply.body.decode()
    assert (await wedding.rest.call("GET", PREFS, wedding.florist)).json["updated_at"] is None


async def test_email_needs_consent_an_address_and_a_server(wedding: Wedding):
    settings = wedding.settings
    principal = wedding.florist.principal
    with_email = Member(
        principal,
        issue_token(
            settings,
            user_id=principal.user_id,
            org_id=principal.org_id,
            role=principal.role,
            name=principal.name,
            email="flora@bloom.example",
        ),
    )
    reply = await put(wedding, with_email, {"email_consent": True})
    assert reply.json["email_address"] == "flora@bloom.example"
    assert reply.json["consent_at"] is not None
    assert reply.json["email_active"] is False  # this hub has no SMTP server
    audited = await wedding.rows(
        "SELECT details FROM vendor_communication_audit WHERE action = 'preferences.update'"
    )
    assert audited[-1]["details"]["email_consent"] is True

    wedding.hub.storage.outward = ("webhook", "email")  # as a hub with HUB_SMTP_URL has it
    await wedding.post(wedding.planner, "@Flora Green the arch?")
    assert [d["channel"] for d in await wedding.deliveries_of(wedding.florist)] == [
        "in_app",
        "email",
    ]
    withdrawn = await put(wedding, with_email, {"email_consent": False})
    assert (withdrawn.json["consent_at"], withdrawn.json["email_active"]) == (None, False)
    await wedding.post(wedding.planner, "@Flora Green and the aisle?")
    channels = [d["channel"] for d in await wedding.deliveries_of(wedding.florist)]
    assert channels == ["in_app", "email", "in_app"]


async def test_mute_silences_mentions_but_not_requests_to_acknowledge(wedding: Wedding):
    path = f"/threads/{wedding.thread.id}/mute"
    reply = await wedding.rest.call("PUT", path, wedding.florist, json_body={"muted": True})
    assert reply.status == 200
    assert reply.json["muted"] is True
    assert (await wedding.rest.call("GET", path, wedding.florist)).json["muted"] is True
    assert (await wedding.rest.call("GET", path, wedding.dj)).json["muted"] is False
    assert (await wedding.rest.call("GET", path, wedding.outsider)).status == 404

    await wedding.post(wedding.planner, "@Flora Green small question")
    assert await wedding.notifications_of(wedding.florist) == []
    await wedding.post(wedding.planner, "@Flora Green the ceremony moved", kind="change")
    assert [n["reason"] for n in await wedding.notifications_of(wedding.florist)] == ["ack_request"]
    unmuted = await wedding.rest.call("PUT", path, wedding.florist, json_body={"muted": False})
    assert unmuted.json == {"thread_id": str(wedding.thread.id), "muted": False, "muted_at": None}
    await wedding.post(wedding.planner, "@Flora Green thanks")
    assert [n["reason"] for n in await wedding.notifications_of(wedding.florist)] == [
        "ack_request",
        "mention",
    ]


async def test_urgent_only_and_mention_alerts(wedding: Wedding):
    await put(wedding, wedding.florist, {"urgent_only": True})
    await put(wedding, wedding.dj, {"mention_alerts": False})
    await wedding.post(wedding.planner, "@Flora Green @Dee Jay a small thing")
    assert await wedding.notifications_of(wedding.florist) == []
    assert await wedding.notifications_of(wedding.dj) == []
    await wedding.rest.call(
        "PUT", f"/threads/{wedding.thread.id}", wedding.planner, json_body={"priority": "urgent"}
    )
    await wedding.post(wedding.planner, "@Flora Green the arch fell over")
    [note] = await wedding.notifications_of(wedding.florist)
    assert (note["reason"], note["urgent"]) == ("mention", True)


MADRID = ZoneInfo("Europe/Madrid")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_quiet_hours_across_midnight_in_the_users_zone():
    # 23:30 in Madrid in winter (UTC+1): quiet until 07:00 local, 06:00 UTC.
    until = quiet_until("22:00", "07:00", MADRID, utc("2027-01-10T22:30:00"))
    assert until == utc("2027-01-11T06:00:00")
    # 06:59 local, still quiet; 07:00 local, no longer.
    assert quiet_until("22:00", "07:00", MADRID, utc("2027-01-11T05:59:00")) == until
    assert quiet_until("22:00", "07:00", MADRID, utc("2027-01-11T06:00:00")) is None
    # 21:59 local is before the quiet hours.
    assert quiet_until("22:00", "07:00", MADRID, utc("2027-01-10T20:59:00")) is None
    assert quiet_until(None, None, MADRID, utc("2027-01-10T23:00:00")) is None


def test_quiet_hours_within_a_day():
    assert quiet_until("13:00", "14:30", MADRID, utc("2027-01-10T12:15:00")) == utc(
        "2027-01-10T13:30:00"
    )
    assert quiet_until("13:00", "14:30", MADRID, utc("2027-01-10T13:30:00")) is None


def test_quiet_hours_follow_the_clock_over_a_daylight_saving_change():
    """Madrid springs forward on 2027-03-28 at 02:00 (to 03:00): the night before is an hour
    shorter, and quiet hours end at 07:00 on the wall, now 05:00 UTC instead of 06:00."""
    until = quiet_until("22:00", "07:00", MADRID, utc("2027-03-27T22:00:00"))  # 23:00 CET
    assert until == utc("2027-03-28T05:00:00")
    # And in autumn (2027-10-31, back to CET), 07:00 is 06:00 UTC again.
    assert quiet_until("22:00", "07:00", MADRID, utc("2027-10-30T21:30:00")) == utc(
        "2027-10-31T06:00:00"
    )
