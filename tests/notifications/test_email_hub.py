"""Notification e-mail through a running hub (both backends) and a real SMTP server (aiosmtpd)
the test starts: sent only with consent and an address, plain text and HTML, with the thread,
the wedding and a link into the web client; and held while the user's quiet hours last."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import trio

from hub.auth import issue_token
from tests.factories import Member
from tests.notifications.conftest import Wedding
from tests.notifications.test_email import Mailbox, smtp_server


@pytest.fixture
def mailbox() -> Mailbox:
    return Mailbox()


@pytest.fixture
def notification_overrides(mailbox: Mailbox) -> Iterator[dict[str, str]]:
    with smtp_server(mailbox) as port:
        yield {
            "HUB_SMTP_URL": f"smtp://127.0.0.1:{port}",
            "HUB_SMTP_FROM": "Vendor Hub <notify@hub.example>",
            "HUB_PUBLIC_URL": "https://hub.example",
        }


def with_email(wedding: Wedding, member: Member, address: str) -> Member:
    p = member.principal
    token = issue_token(
        wedding.settings,
        user_id=p.user_id,
        org_id=p.org_id,
        role=p.role,
        name=p.name,
        email=address,
    )
    return Member(p, token)


async def test_a_mention_is_mailed_once_the_user_consented(wedding: Wedding, mailbox: Mailbox):
    flora = with_email(wedding, wedding.florist, "flora@bloom.example")
    prefs = await wedding.rest.call("GET", "/me/notification-preferences", flora)
    assert (prefs.json["email_address"], prefs.json["email_active"]) == (
        "flora@bloom.example",
        False,
    )
    await wedding.post(wedding.planner, "@Flora Green before consent")
    consented = await wedding.rest.call(
        "PUT", "/me/notification-preferences", flora, json_body={"email_consent": True}
    )
    assert consented.json["email_active"] is True

    await wedding.post(wedding.planner, "@Flora Green <b>arch</b> at noon?")
    await wedding.settled("email")
    [(sender, recipients, message)] = mailbox.received
    assert recipients == ["flora@bloom.example"]
    assert "notify@hub.example" in sender
    assert "Paula Planner mentioned you" in message["Subject"]
    assert "Ceremony timeline" in message["Subject"]
    plain = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    link = f"https://hub.example/#/t/{wedding.thread.id}"
    assert "@Flora Green <b>arch</b> at noon?" in plain
    assert link in plain and link in html
    assert "Rivera &amp; Chen" in html and "&lt;b&gt;arch&lt;/b&gt;" in html
    assert "<b>arch</b>" not in html
    [row] = await wedding.rows(
        "SELECT idempotency_key FROM notification_deliveries WHERE channel = 'email'"
    )
    assert message["Message-ID"] == f"<{row['idempotency_key']}@hub.example>"


async def test_quiet_hours_hold_the_mail_of_a_non_urgent_mention(
    wedding: Wedding, mailbox: Mailbox
):
    flora = with_email(wedding, wedding.florist, "flora@bloom.example")
    now = datetime.now(UTC)
    quiet = {
        "start": (now - timedelta(hours=1)).strftime("%H:%M"),
        "end": (now + timedelta(hours=2)).strftime("%H:%M"),
    }
    await wedding.rest.call(
        "PUT",
        "/me/notification-preferences",
        flora,
        json_body={"email_consent": True, "quiet_hours": quiet, "time_zone": "UTC"},
    )
    await wedding.post(wedding.planner, "@Flora Green no rush")
    with trio.fail_after(10):
        while True:
            [row] = await wedding.rows(
                "SELECT last_error, status FROM notification_deliveries WHERE channel = 'email'"
            )
            if row["last_error"] == "quiet hours":
                break
            await trio.sleep(0.02)
    assert row["status"] == "pending"
    assert mailbox.received == []
    # An urgent thread's mention goes through.
    await wedding.rest.call(
        "PUT", f"/threads/{wedding.thread.id}", wedding.planner, json_body={"priority": "urgent"}
    )
    await wedding.post(wedding.planner, "@Flora Green the arch fell")
    with trio.fail_after(10):
        while not mailbox.received:  # noqa: ASYNC110 (aiosmtpd's thread fills it)
            await trio.sleep(0.02)
    [(_, _, message)] = mailbox.received
    assert str(message["Subject"]).strip().startswith("[Urgent]")
