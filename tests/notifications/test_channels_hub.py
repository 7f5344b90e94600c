"""The outward channels through a running hub (both backends): webhooks registered over REST
and delivered, signed, to a real HTTP receiver the test starts, retried after 500s; refused when
they would reach what they must not; and e-mail through a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import json
import time

import pytest
import trio

from hub.actors.dispatcher import RetryPolicy
from hub.notifications.webhooks import verify_signature
from tests.factories import Member
from tests.notifications.conftest import Wedding
from tests.notifications.receiver import Receiver


async def register(wedding: Wedding, member: Member, url: str, **fields):
    return await wedding.rest.call("POST", "/webhooks", member, json_body={"url": url, **fields})


async def wait_for(predicate, *, timeout_s: float = 10.0) -> None:
    """Until `predicate()` holds: what the hub's dispatcher did is seen only from outside."""
    with trio.fail_after(timeout_s):
        while not predicate():  # noqa: ASYNC110 (the receiver has no event to wait on)
            await trio.sleep(0.02)


@pytest.fixture
def notification_overrides() -> dict[str, str]:
    # The receivers the tests start listen on loopback; the hub's own ports stay refused.
    return {"HUB_WEBHOOK_ALLOW_HOSTS": "127.0.0.1"}


async def test_a_registered_webhook_gets_signed_deliveries_retried_after_500s(wedding: Wedding):
    assert wedding.hub.dispatcher is not None
    wedding.hub.dispatcher.retry = RetryPolicy(base_s=0.05, cap_s=0.2, max_attempts=5)
    async with trio.open_nursery() as nursery:
        receiver = await Receiver(statuses=(500, 503, 200)).start(nursery)
        await _deliver_and_check(wedding, receiver)
        nursery.cancel_scope.cancel()


async def _deliver_and_check(wedding: Wedding, receiver: Receiver) -> None:
    url = f"http://127.0.0.1:{receiver.port}/hub-events"
    created = await register(wedding, wedding.florist_admin, url, events=["mention", "ack_request"])
    assert created.status == 201, created.body
    secret = created.json["secret"]
    assert secret.startswith("whsec_")
    listed = await wedding.rest.call("GET", "/webhooks", wedding.florist_admin)
    [hook] = listed.json["webhooks"]
    assert "secret" not in hook and hook["events"] == ["ack_request", "mention"]
    assert secret not in listed.body.decode()

    reply = await wedding.post(wedding.planner, "@Flora Green the peonies?")
    assert reply.status == 201
    await wait_for(lambda: len(receiver.requests) == 3)

    first, _, last = receiver.requests
    assert first.target == "/hub-events"
    assert first.body == last.body  # the same delivery, tried again
    assert first.headers["x-hub-delivery"] == last.headers["x-hub-delivery"]
    assert last.headers["idempotency-key"] == last.headers["x-hub-delivery"]
    assert last.headers["x-hub-event"] == "mention"
    assert verify_signature(
        secret.encode(),
        last.headers["x-hub-timestamp"],
        last.headers["x-hub-signature-256"],
        last.body,
        now=time.time(),
    )
    assert not verify_signature(
        b"whsec_wrong",
        last.headers["x-hub-timestamp"],
        last.headers["x-hub-signature-256"],
        last.body,
        now=time.time(),
    )
    event = json.loads(last.body)
    assert event["event"] == "mention"
    assert event["organization_id"] == str(wedding.florist.org_id)
    assert event["user_ids"] == [str(wedding.florist.user_id)]
    assert event["message"]["body"] == "@Flora Green the peonies?"
    assert event["message"]["sender"]["name"] == "Paula Planner"
    assert (event["group"]["name"], event["thread"]["title"]) == (
        "Rivera & Chen",
        "Ceremony timeline",
    )
    [row] = await wedding.settled("webhook")
    assert (row["status"], row["attempts"]) == ("delivered", 3)


async def test_registration_refuses_what_a_webhook_must_not_reach(wedding: Wedding):
    admin = wedding.florist_admin
    for url, complaint in [
        ("http://10.1.2.3/hook", "https"),
        ("https://10.1.2.3/hook", "private"),
        ("https://169.254.169.254/latest/meta-data", "link-local"),
        ("https://[::1]/hook", "loopback"),
        ("https://[::ffff:10.0.0.1]/hook", "private"),
        ("https://localhost/hook", "local"),
        ("https://user:pw@hooks.example/", "user name or password"),
        (wedding.hub.rest_url.replace("/api/vendor-connections", "") + "/x", "hub itself"),
    ]:
        reply = await register(wedding, admin, url)
        assert reply.status in (400, 422), (url, reply.status)
        assert complaint in reply.json["error"]["message"], (url, reply.json)
    vendor = await register(wedding, wedding.florist, "https://hooks.example/")
    assert vendor.status == 403
    assert (await wedding.rest.call("GET", "/webhooks", wedding.florist)).status == 403
    assert await wedding.rows("SELECT * FROM organization_webhooks") == []


async def test_one_url_is_registered_once_per_organization(wedding: Wedding):
    first = await register(wedding, wedding.florist_admin, "https://hooks.example/bloom")
    assert first.status == 201, first.body
    twice = await register(wedding, wedding.florist_admin, "https://hooks.example/bloom")
    assert twice.status == 409
    assert first.json["id"] in twice.json["error"]["message"]
    # Another organization may send to the same receiver; a deleted one frees its URL.
    other = await register(wedding, wedding.planner, "https://hooks.example/bloom")
    assert other.status == 201, other.body
    gone = await wedding.rest.call("DELETE", f"/webhooks/{first.json['id']}", wedding.florist_admin)
    assert gone.status == 204, gone.body
    again = await register(wedding, wedding.florist_admin, "https://hooks.example/bloom")
    assert again.status == 201, again.body


async def test_a_deleted_webhook_is_told_nothing_more(wedding: Wedding):
    url = "http://127.0.0.1:9/hook"
    created = await register(wedding, wedding.florist_admin, url)
    hook_id = created.json["id"]
    other = await wedding.rest.call("DELETE", f"/webhooks/{hook_id}", wedding.dj)
    assert other.status in (403, 404)
    deleted = await wedding.rest.call("DELETE", f"/webhooks/{hook_id}", wedding.florist_admin)
    assert deleted.status == 204
    again = await wedding.rest.call("DELETE", f"/webhooks/{hook_id}", wedding.florist_admin)
    assert again.status == 404
    await wedding.post(wedding.planner, "@Bloom & Co anyone?")
    assert (
        await wedding.rows("SELECT * FROM notification_deliveries WHERE channel = 'webhook'") == []
    )
    audit = await wedding.rows(
        "SELECT action FROM vendor_communication_audit WHERE target_type = 'webhook' ORDER BY id"
    )
    assert [a["action"] for a in audit] == ["webhook.create", "webhook.delete"]
