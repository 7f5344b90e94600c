"""The dispatcher: the outbox delivered at least once (live frames, the inbox), and what it does
with failures: backoff with jitter, the dead-letter state and its retry, permanent failures,
leases that run out, and quiet hours that hold what is not urgent. Both backends."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest

from hub import client as hub_client
from hub import protocol
from hub.actors.dispatcher import Dispatcher, RetryPolicy, Work
from hub.notifications.failures import DeliveryFailed
from hub.storage import Storage, changes
from hub.storage.groups import remove_member
from hub.storage.outbox import claim_due, dead_letters, retry_dead
from hub.storage.preferences import update_preferences
from hub.storage.records import Mentions, MessageDraft
from hub.storage.sql import execute, fetch
from hub.storage.threads import update_thread
from tests.factories import Member, add_member, new_group, new_member, new_thread
from tests.notifications.conftest import Wedding


async def test_a_mention_reaches_the_users_sockets_and_inbox(wedding: Wedding):
    async with hub_client.connect(wedding.hub.ws_url, wedding.florist.token) as florist:
        reply = await wedding.post(wedding.planner, "@Flora Green   the arch\nat noon?")
        assert reply.status == 201
        frame = await florist.next_event(protocol.Notification)
    assert (frame.reason, frame.thread_id, frame.seq) == ("mention", wedding.thread.id, 1)
    assert (frame.thread_title, frame.sender_name) == ("Ceremony timeline", "Paula Planner")
    assert frame.preview == "@Flora Green the arch at noon?"
    assert (frame.urgent, frame.quiet) == (False, False)

    inbox = await wedding.rest.call("GET", "/me/notifications", wedding.florist)
    assert inbox.status == 200
    [entry] = inbox.json["notifications"]
    assert (entry["id"], entry["reason"], entry["read_at"]) == (frame.id, "mention", None)
    assert entry["group_name"] == "Rivera & Chen"
    assert inbox.json["unread_count"] == 1
    [delivery] = await wedding.settled("in_app")
    assert (delivery["status"], delivery["attempts"]) == ("delivered", 1)
    assert wedding.hub.metrics is not None
    counted = wedding.hub.metrics.registry.get_sample_value(
        "hub_notification_deliveries_total", {"channel": "in_app", "outcome": "delivered"}
    )
    assert counted == 1


async def test_the_inbox_pages_marks_read_and_forgets_a_group_left(wedding: Wedding):
    for n in range(3):
        await wedding.post(wedding.planner, f"@Bloom & Co question {n}")
    first = await wedding.rest.call("GET", "/me/notifications?limit=2", wedding.florist)
    assert [e["preview"] for e in first.json["notifications"]] == [
        "@Bloom & Co question 2",
        "@Bloom & Co question 1",
    ]
    assert first.json["has_more"] is True
    last_id = first.json["notifications"][-1]["id"]
    rest = await wedding.rest.call("GET", f"/me/notifications?before={last_id}", wedding.florist)
    assert [e["preview"] for e in rest.json["notifications"]] == ["@Bloom & Co question 0"]

    newest = first.json["notifications"][0]["id"]
    # Someone else's notification cannot be marked by the florist.
    others = await wedding.rest.call("GET", "/me/notifications", wedding.florist_admin)
    foreign = others.json["notifications"][0]["id"]
    marked = await wedding.rest.call(
        "POST", "/me/notifications/read", wedding.florist, json_body={"ids": [newest, foreign]}
    )
    assert marked.json == {"marked": 1, "unread_count": 2}
    unread = await wedding.rest.call("GET", "/me/notifications?unread=true", wedding.florist)
    assert newest not in {e["id"] for e in unread.json["notifications"]}
    admin = await wedding.rest.call("GET", "/me/notifications", wedding.florist_admin)
    assert admin.json["unread_count"] == 3
    everything = await wedding.rest.call(
        "POST", "/me/notifications/read", wedding.florist, json_body={"all": True}
    )
    assert everything.json == {"marked": 2, "unread_count": 0}
    neither = await wedding.rest.call(
        "POST", "/me/notifications/read", wedding.florist, json_body={}
    )
    assert neither.status == 422

    await wedding.hub.storage.write(
        lambda now: remove_member(
            group_id=wedding.group.id, organization_id=wedding.florist.org_id, now=now
        )
    )
    gone = await wedding.rest.call("GET", "/me/notifications", wedding.florist)
    assert gone.json == {"notifications": [], "unread_count": 0, "has_more": False}


class Channel:
    """A channel that answers from a script: "ok", "fail" (transient), "permanent"."""

    def __init__(self, script: list[str]) -> None:
        self.script = script
        self.seen: list[Work] = []

    async def deliver(self, work: Work) -> None:
        self.seen.append(work)
        answer = self.script.pop(0) if self.script else "ok"
        if answer == "fail":
            raise DeliveryFailed("receiver answered 500")
        if answer == "permanent":
            raise DeliveryFailed("mailbox does not exist", permanent=True)


class Clock:
    """The dispatcher's now, moved by the test. It starts a little ahead of the wall clock:
    deliveries are due from their commit's (wall-clock) moment."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime.now(UTC) + timedelta(seconds=1)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Outbox:
    """A planner, and Flora of another organization with an e-mail address and consent, in
    one thread; no hub runs, so only the test's dispatcher delivers."""

    storage: Storage
    thread_id: UUID
    planner: Member
    florist: Member

    async def mention(self, body: str = "@Flora Green hello") -> None:
        await self.storage.append_message(
            MessageDraft(
                thread_id=self.thread_id,
                sender_user_id=self.planner.user_id,
                sender_org_id=self.planner.org_id,
                client_msg_id=body,
                body=body,
                mentions=Mentions(user_ids=(self.florist.user_id,)),
            )
        )

    def dispatcher(self, channels: dict, clock: Clock, **kw) -> Dispatcher:
        return Dispatcher(self.storage, channels, clock=clock, rng=random.Random(7), **kw)

    async def rows(self, sql: str, *args):
        def op():
            return (yield fetch(sql, *args))

        return await self.storage.read(op())

    async def email_row(self) -> dict:
        [row] = await self.rows(
            "SELECT status, attempts, next_attempt_at, last_error FROM notification_deliveries "
            "WHERE channel = 'email'"
        )
        return row


@pytest.fixture
async def outbox(storage: Storage, settings) -> Outbox:
    planner = await new_member(storage, settings, name="Paula Planner")
    florist = await new_member(storage, settings, role="vendor", name="Flora Green")
    group = await new_group(storage, planner)
    await add_member(storage, group, florist, invited_by=planner)
    thread = await new_thread(storage, group, planner)

    def email(now):
        yield execute(
            "UPDATE user_profiles SET email = 'flora@bloom.example' WHERE id = $1",
            florist.user_id,
        )
        return (yield from update_preferences(florist.user_id, {"consent_at": now}, now))

    await storage.write(email)
    storage.outward = ("webhook", "email")
    return Outbox(storage, thread.id, planner, florist)


async def test_failures_back_off_with_jitter_then_die_and_an_operator_retries(outbox: Outbox):
    clock = Clock()
    email = Channel(["fail", "fail", "fail"])
    retry = RetryPolicy(base_s=10, cap_s=25, max_attempts=3)
    dispatcher = outbox.dispatcher(
        {"in_app": Channel([]), "email": email}, clock, retry=retry, lease_s=600
    )
    await outbox.mention()
    assert await dispatcher.run_once() == 2
    [in_app] = await outbox.rows(
        "SELECT status FROM notification_deliveries WHERE channel = 'in_app'"
    )
    assert in_app["status"] == "delivered"
    for attempt in (1, 2):
        row = await outbox.email_row()
        assert (row["status"], row["attempts"]) == ("pending", attempt)
        assert row["last_error"] == "receiver answered 500"
        wait = (row["next_attempt_at"] - clock.now).total_seconds()
        ceiling = min(25, 10 * 2 ** (attempt - 1))
        assert ceiling / 2 <= wait <= ceiling, (attempt, wait)
        assert await dispatcher.run_once() == 0  # not due yet
        clock.advance(wait)
        assert await dispatcher.run_once() == 1
    [dead] = await outbox.storage.read(dead_letters())
    assert (dead["channel"], dead["attempts"]) == ("email", 3)
    assert dead["last_error"] == "receiver answered 500 (after 3 attempts)"
    # Every attempt carried the same idempotency key.
    assert len({w.claimed.idempotency_key for w in email.seen}) == 1

    assert await outbox.storage.write(lambda now: retry_dead(None, clock.now)) == 1
    assert await dispatcher.run_once() == 1
    assert await outbox.storage.read(dead_letters()) == []
    row = await outbox.email_row()
    assert (row["status"], row["attempts"]) == ("delivered", 1)


async def test_a_permanent_failure_is_dead_at_once(outbox: Outbox):
    clock = Clock()
    dispatcher = outbox.dispatcher({"in_app": Channel([]), "email": Channel(["permanent"])}, clock)
    await outbox.mention()
    await dispatcher.run_once()
    [dead] = await outbox.storage.read(dead_letters())
    assert (dead["attempts"], dead["last_error"]) == (1, "mailbox does not exist")


async def test_a_lease_that_runs_out_is_delivered_again_with_the_same_key(outbox: Outbox):
    """A node claims and dies before recording anything: after the lease, another delivers."""
    clock = Clock()
    await outbox.mention()
    claimed = await outbox.storage.write(
        lambda _: claim_due(clock.now, clock.now + timedelta(seconds=120), 10)
    )
    assert len(claimed) == 2
    in_app, email = Channel([]), Channel([])
    dispatcher = outbox.dispatcher({"in_app": in_app, "email": email}, clock)
    assert await dispatcher.run_once() == 0  # leased to the node that died
    clock.advance(121)
    assert await dispatcher.run_once() == 2
    keys = {w.claimed.idempotency_key for w in in_app.seen + email.seen}
    assert keys == {c.idempotency_key for c in claimed}
    rows = await outbox.rows("SELECT status, attempts FROM notification_deliveries")
    assert [(r["status"], r["attempts"]) for r in rows] == [("delivered", 2)] * 2


async def test_quiet_hours_hold_email_until_they_end_but_not_the_inbox(outbox: Outbox):
    madrid = ZoneInfo("Europe/Madrid")
    await outbox.storage.write(
        lambda now: update_preferences(
            outbox.florist.user_id,
            {
                "quiet_hours_start": "22:00",
                "quiet_hours_end": "07:00",
                "time_zone": "Europe/Madrid",
            },
            now,
        )
    )
    await outbox.mention()
    # 00:30 tomorrow night in Madrid.
    tomorrow = datetime.now(madrid).date() + timedelta(days=2)
    clock = Clock(datetime.combine(tomorrow, time(0, 30), madrid).astimezone(UTC))
    in_app, email = Channel([]), Channel([])
    dispatcher = outbox.dispatcher({"in_app": in_app, "email": email}, clock)
    assert await dispatcher.run_once() == 2
    assert [w.quiet_until is not None for w in in_app.seen] == [True]  # shown, quietly
    assert email.seen == []
    held = await outbox.email_row()
    assert (held["status"], held["attempts"], held["last_error"]) == ("pending", 0, "quiet hours")
    seven = datetime.combine(tomorrow, time(7, 0), madrid).astimezone(UTC)
    assert held["next_attempt_at"] == seven
    clock.now = seven
    assert await dispatcher.run_once() == 1
    assert len(email.seen) == 1
    assert (await outbox.email_row())["status"] == "delivered"


async def test_an_urgent_notification_goes_through_quiet_hours(outbox: Outbox):
    await outbox.storage.write(
        lambda now: update_preferences(
            outbox.florist.user_id, {"quiet_hours_start": "00:00", "quiet_hours_end": "23:59"}, now
        )
    )
    await outbox.storage.write(
        lambda now: update_thread(outbox.thread_id, {"priority": "urgent"}, now)
    )
    await outbox.mention("@Flora Green the arch fell")
    clock = Clock(datetime.combine(datetime.now(UTC).date() + timedelta(days=1), time(12), UTC))
    email = Channel([])
    await outbox.dispatcher({"in_app": Channel([]), "email": email}, clock).run_once()
    assert len(email.seen) == 1
    assert email.seen[0].claimed.urgent is True


async def test_what_is_owed_about_a_deleted_message_is_never_sent(outbox: Outbox):
    clock = Clock()
    in_app, email = Channel([]), Channel([])
    dispatcher = outbox.dispatcher({"in_app": in_app, "email": email}, clock)
    await outbox.mention("@Flora Green the gate code is 4417")
    [message] = await outbox.rows("SELECT id, seq, thread_id FROM thread_messages")

    def delete(now):
        found = yield from changes.target(message["thread_id"], message["seq"])
        group_id = uuid.uuid4()  # (only named in the Change it returns)
        return (
            yield from changes.tombstone(
                message["thread_id"], group_id, found, message["seq"], outbox.planner.user_id, now
            )
        )

    await outbox.storage.write(delete)
    assert await dispatcher.run_once() == 2
    assert (in_app.seen, email.seen) == ([], [])  # nothing reached a channel
    rows = await outbox.rows("SELECT channel, status, last_error FROM notification_deliveries")
    assert sorted((r["channel"], r["status"], r["last_error"]) for r in rows) == [
        ("email", "dead", "the message was deleted"),
        ("in_app", "dead", "the message was deleted"),
    ]
