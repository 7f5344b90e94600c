"""WebSocket round trips through a whole running hub, with hub.client on loopback.

    python -m bench.realtime --clients 20 --seconds 10
    python -m bench.realtime --database-url postgresql://postgres@127.0.0.1/postgres

`--clients` sockets (one user each, two organizations) join one thread; each sends as fast as its
acks come back for `--seconds`. Reports messages/s, send → ack latency (ack only after commit),
and send → delivered latency measured at one listening socket. The hub runs in this process, so
client and server share the machine's cores; the numbers are for comparing changes, not
capacity planning. Each run uses a fresh database: SQLite in a temporary directory, or with
--database-url (a PostgreSQL server it may create databases on) a new database dropped after.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import secrets
import statistics
import tempfile
import time
import uuid

import trio
import trio_asyncio

from bench.storage.__main__ import _drop_postgres, _fresh_postgres
from hub import client as hub_client
from hub import protocol
from hub.app import run_hub
from hub.auth import issue_token
from hub.config import load_settings
from hub.storage.groups import create_group, invite_organization, respond_to_invitation
from hub.storage.identities import upsert_identity
from hub.storage.threads import create_thread


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def bench(args: argparse.Namespace, database_url: str, var_dir: str) -> dict:
    settings = load_settings(
        {
            "HUB_DATABASE_URL": database_url,
            "HUB_JWT_SECRET": secrets.token_hex(32),
            "HUB_ENCRYPTION_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
            "HUB_VAR_DIR": var_dir,
            "HUB_HTTP_PORT": "0",
            "HUB_WS_PORT": "0",
            "HUB_WS_MESSAGE_RATE": "100000",
            "HUB_WS_MESSAGE_BURST": "100000",
            "HUB_LOG_LEVEL": "WARNING",
        }
    )
    shutdown = trio.Event()
    ack_latency: list[float] = []
    delivery_latency: list[float] = []
    sent_at: dict[str, float] = {}
    async with trio.open_nursery() as nursery:
        running = await nursery.start(run_hub, settings, shutdown)
        storage = running.storage
        orgs = [uuid.uuid4(), uuid.uuid4()]
        users = [uuid.uuid4() for _ in range(args.clients)]
        for i, user in enumerate(users):
            await storage.write(
                lambda now, user=user, i=i: upsert_identity(
                    user_id=user,
                    organization_id=orgs[i % 2],
                    username=f"u{i}",
                    display_name=f"User {i}",
                    role="owner",
                    now=now,
                )
            )
        group_id, thread_id = uuid.uuid4(), uuid.uuid4()
        await storage.write(
            lambda now: create_group(
                group_id=group_id,
                owner_organization_id=orgs[0],
                created_by=users[0],
                name="Bench",
                now=now,
            )
        )
        if args.clients > 1:
            await storage.write(
                lambda now: invite_organization(
                    group_id=group_id,
                    organization_id=orgs[1],
                    vendor_type="other",
                    role="vendor",
                    invited_by=users[0],
                    now=now,
                )
            )
            await storage.write(
                lambda now: respond_to_invitation(
                    group_id=group_id, organization_id=orgs[1], accept=True, now=now
                )
            )
        await storage.write(
            lambda now: create_thread(
                thread_id=thread_id, group_id=group_id, title="Bench", created_by=users[0], now=now
            )
        )
        tokens = [
            issue_token(settings, user_id=u, org_id=orgs[i % 2], role="owner")
            for i, u in enumerate(users)
        ]
        deadline = trio.current_time() + args.seconds
        done = trio.Event()
        drained = trio.Event()

        async def listener() -> None:
            async with hub_client.connect(running.ws_url, tokens[0]) as client:
                await client.join(thread_id)
                listening.set()
                async for event in client.events():
                    if isinstance(event, protocol.NewMessage):
                        started = sent_at.pop(event.message.client_msg_id, None)
                        if started is not None:
                            delivery_latency.append(time.perf_counter() - started)
                    if done.is_set() and not sent_at:
                        drained.set()
                        return

        async def sender(token: str) -> None:
            async with hub_client.connect(running.ws_url, token) as client:
                while trio.current_time() < deadline:
                    client_msg_id = uuid.uuid4().hex
                    started = sent_at[client_msg_id] = time.perf_counter()
                    await client.send(thread_id, "bench " * 10, client_msg_id=client_msg_id)
                    ack_latency.append(time.perf_counter() - started)

        listening = trio.Event()
        async with trio.open_nursery() as clients:
            clients.start_soon(listener)
            await listening.wait()
            began = time.perf_counter()
            async with trio.open_nursery() as senders:
                for token in tokens:
                    senders.start_soon(sender, token)
            elapsed = time.perf_counter() - began
            done.set()
            if not sent_at:
                drained.set()
            with trio.move_on_after(10):
                await drained.wait()  # the listener has seen every message sent
            clients.cancel_scope.cancel()
        shutdown.set()
    ms = 1000.0
    return {
        "backend": settings.backend,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "clients": args.clients,
        "seconds": round(elapsed, 2),
        "messages": len(ack_latency),
        "messages_per_s": round(len(ack_latency) / elapsed, 1),
        "ack_ms": {
            "p50": round(percentile(ack_latency, 0.5) * ms, 2),
            "p99": round(percentile(ack_latency, 0.99) * ms, 2),
            "mean": round(statistics.fmean(ack_latency) * ms, 2) if ack_latency else None,
        },
        "delivered_ms": {
            "p50": round(percentile(delivery_latency, 0.5) * ms, 2),
            "p99": round(percentile(delivery_latency, 0.99) * ms, 2),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.realtime", description=__doc__)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{tmp}/bench.db"

        async def run() -> dict:
            if not url.startswith("postgres"):
                return await bench(args, url, tmp)
            fresh = await _fresh_postgres(url)
            try:
                async with trio_asyncio.open_loop():
                    return await bench(args, fresh, tmp)
            finally:
                await _drop_postgres(url, fresh)

        print(json.dumps(trio.run(run), indent=2))


if __name__ == "__main__":
    main()
