"""The outbox across a kill -9 (subprocess hubs, PostgreSQL): a mention committed while the
mail server is down is still owed after the hub is killed, and the next hub delivers it, once,
with the same Message-ID; and `hub notifications dead-letter` lists and retries what died."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
import trio
import trio_asyncio

from hub.storage import open_storage
from hub.storage.preferences import update_preferences
from hub.storage.records import Mentions, MessageDraft
from hub.storage.sql import execute, fetch
from tests.attachments.conftest import Rest
from tests.cluster.nodes import SECRETS, start_node
from tests.factories import planner_and_vendor
from tests.notifications.test_email import Mailbox, smtp_server
from tests.realtime.conftest import realtime_settings

pytestmark = pytest.mark.postgres

FROM = "Vendor Hub <notify@hub.example>"


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _deliveries():
    return (
        yield fetch(
            "SELECT channel, status, attempts, idempotency_key FROM notification_deliveries "
            "WHERE channel = 'email'"
        )
    )


def _email(user_id, now):
    yield execute("UPDATE user_profiles SET email = 'dee@beatbox.example' WHERE id = $1", user_id)
    return (yield from update_preferences(user_id, {"consent_at": now}, now))


async def test_a_killed_hub_loses_no_pending_delivery(postgres_url, tmp_path):
    settings = realtime_settings(postgres_url, tmp_path / "test-var", **SECRETS)
    async with trio_asyncio.open_loop(), open_storage(settings) as storage:
        planner, dj, _, thread = await planner_and_vendor(storage, settings)
        await storage.write(lambda now: _email(dj.user_id, now))

        quick = {
            "HUB_SMTP_FROM": FROM,
            "HUB_NOTIFY_RETRY_BASE_S": "0.2",
            "HUB_NOTIFY_LEASE_S": "2",
        }
        down = {"HUB_SMTP_URL": f"smtp://127.0.0.1:{closed_port()}", **quick}
        node = await start_node("outbox-node", postgres_url, None, tmp_path, **down)
        try:
            reply = await Rest(node).call(  # type: ignore[arg-type]  (anything with rest_url)
                "POST",
                f"/threads/{thread.id}",
                planner,
                json_body={"body": "@Dee Jay first dance moved to 9 pm"},
            )
            assert reply.status == 201  # committed, with its delivery, before this answer
            # Until the hub has tried (and failed) at least once: the delivery is owed.
            with trio.fail_after(10):
                while True:
                    [row] = await storage.read(_deliveries())
                    if row["attempts"] >= 1:
                        break
                    await trio.sleep(0.05)
        finally:
            await trio.to_thread.run_sync(node.kill)
        [row] = await storage.read(_deliveries())
        assert row["status"] == "pending"

        mailbox = Mailbox()
        with smtp_server(mailbox) as port:
            up = {"HUB_SMTP_URL": f"smtp://127.0.0.1:{port}", **quick}
            node = await start_node("outbox-node", postgres_url, None, tmp_path, **up)
            try:
                with trio.fail_after(20):
                    while True:
                        [row] = await storage.read(_deliveries())
                        if row["status"] == "delivered":
                            break
                        await trio.sleep(0.05)
            finally:
                await trio.to_thread.run_sync(node.stop)
        [(_, recipients, message)] = mailbox.received
        assert recipients == ["dee@beatbox.example"]
        assert message["Message-ID"] == f"<{row['idempotency_key']}@hub.example>"
        assert "first dance moved to 9 pm" in message.get_body(("plain",)).get_content()


def _hub(*args: str, database_url: str, tmp_path) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    environ.update(SECRETS, HUB_DATABASE_URL=database_url, HUB_VAR_DIR=str(tmp_path / "cli"))
    return subprocess.run(
        [sys.executable, "-m", "hub", "notifications", "dead-letter", *args],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _kill_deliveries():
    yield execute(
        "UPDATE notification_deliveries SET status = 'dead', attempts = 10, "
        "last_error = 'receiver answered 500 (after 10 attempts)'"
    )


async def test_dead_letters_are_listed_and_retried_by_the_operator(postgres_url, tmp_path):
    settings = realtime_settings(postgres_url, tmp_path / "test-var", **SECRETS)
    async with trio_asyncio.open_loop(), open_storage(settings) as storage:
        planner, dj, _, thread = await planner_and_vendor(storage, settings)
        for n in range(2):
            await storage.append_message(
                MessageDraft(
                    thread_id=thread.id,
                    sender_user_id=planner.user_id,
                    sender_org_id=planner.org_id,
                    client_msg_id=f"m{n}",
                    body=f"@Dee Jay song {n}",
                    mentions=Mentions(user_ids=(dj.user_id,)),
                )
            )
        await storage.write(lambda now: _kill_deliveries())

        listed = await trio.to_thread.run_sync(
            lambda: _hub("list", database_url=postgres_url, tmp_path=tmp_path)
        )
        assert listed.returncode == 0, listed.stderr
        lines = listed.stdout.strip().splitlines()
        assert len(lines) == 2
        assert all("in_app" in line and "after 10 attempts" in line for line in lines)
        first_id = lines[0].split("\t")[0]

        refused = await trio.to_thread.run_sync(
            lambda: _hub("retry", database_url=postgres_url, tmp_path=tmp_path)
        )
        assert refused.returncode == 2
        assert "--all" in refused.stderr

        one = await trio.to_thread.run_sync(
            lambda: _hub("retry", first_id, database_url=postgres_url, tmp_path=tmp_path)
        )
        assert one.stdout.strip() == "1 dead deliveries are pending again"
        rest = await trio.to_thread.run_sync(
            lambda: _hub("retry", "--all", database_url=postgres_url, tmp_path=tmp_path)
        )
        assert rest.stdout.strip() == "1 dead deliveries are pending again"

        def statuses():
            return (yield fetch("SELECT status, attempts FROM notification_deliveries"))

        rows = await storage.read(statuses())
        assert [(r["status"], r["attempts"]) for r in rows] == [("pending", 0)] * 2
