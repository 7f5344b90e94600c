"""Building the world a run needs, through the hub's REST API, as real clients would.

For each thread: its owner creates a connection group (POST /groups), invites each other member's
organization (POST /groups/{id}), each member accepts (POST /groups/{id}/accept), and the owner
opens the thread (POST /threads). Tokens are minted with `hub.auth.issue_token` — the code path
of `hub token` — from the same HUB_JWT_SECRET the server was given.

Requests run on a pool of threads, each with its own keep-alive connection; plain http.client
keeps the bench free of an HTTP client dependency, and the pool keeps a few dozen requests in
flight, which is all the server can take on two cores anyway.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

from bench.load.scenario import Member, Scenario, ThreadPlan
from hub.auth import issue_token
from hub.config import load_settings

TOKEN_TTL_S = 6 * 3600  # outlives any run; an expiring token would close sockets with 4001


class ProvisioningFailed(Exception):
    pass


def plan_members(scenario: Scenario, hub_env: Mapping[str, str] | None) -> list[ThreadPlan]:
    """Users and organizations for every thread, with tokens when there is a secret to sign
    them with (the peer needs none)."""
    settings = load_settings(environ=dict(hub_env)) if hub_env else None
    threads = []
    for t in range(scenario.threads):
        members = []
        for m in range(scenario.members_per_thread):
            user_id, org_id = uuid.uuid4(), uuid.uuid4()
            token = ""
            if settings is not None:
                token = issue_token(
                    settings,
                    user_id=user_id,
                    org_id=org_id,
                    role="owner",  # of their own organization: may create and accept
                    name=f"bench t{t} m{m}",
                    ttl_s=TOKEN_TTL_S,
                )
            members.append(Member(user_id=str(user_id), org_id=str(org_id), token=token))
        threads.append(ThreadPlan(members=members))
    return threads


class _Rest:
    """One keep-alive connection per pool thread."""

    def __init__(self, rest_url: str) -> None:
        parts = urlsplit(rest_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.base = parts.path.rstrip("/")
        self._local = threading.local()

    def post(self, path: str, token: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        payload = json.dumps(body or {}).encode()
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        last_error: Exception | None = None
        for attempt in range(8):
            conn = self._connection()
            try:
                conn.request("POST", self.base + path, payload, headers)
                response = conn.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException) as exc:
                # A keep-alive connection the server closed while idle fails once; retry on a
                # fresh one.
                last_error = exc
                self._local.conn = None
                conn.close()
                time.sleep(0.1 * (attempt + 1))
                continue
            if response.status == 429:
                time.sleep(float(response.getheader("Retry-After") or 1))
                continue
            if response.status >= 300:
                raise ProvisioningFailed(
                    f"POST {path} answered {response.status}: {data[:300].decode(errors='replace')}"
                )
            return json.loads(data) if data else {}
        raise ProvisioningFailed(f"POST {path} failed 8 times, last with {last_error!r}")

    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        return conn


def provision_rest(
    rest_url: str,
    threads: list[ThreadPlan],
    *,
    concurrency: int = 16,
    on_thread_done: Callable[[], None] = lambda: None,
) -> None:
    """Create every group, membership and thread; fills in `group_id` and `thread_id`."""
    rest = _Rest(rest_url)

    def build(index: int, plan: ThreadPlan) -> None:
        owner, *others = plan.members
        group = rest.post("/groups", owner.token, {"name": f"Bench wedding {index}"})
        plan.group_id = group["id"]
        for member in others:
            rest.post(
                f"/groups/{plan.group_id}",
                owner.token,
                {"organization_id": member.org_id, "vendor_type": "photographer"},
            )
            rest.post(f"/groups/{plan.group_id}/accept", member.token)
        thread = rest.post(
            "/threads", owner.token, {"group_id": plan.group_id, "title": f"Bench thread {index}"}
        )
        plan.thread_id = thread["id"]
        on_thread_done()

    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="provision") as pool:
        for future in [pool.submit(build, i, plan) for i, plan in enumerate(threads)]:
            future.result()


def name_rooms(threads: list[ThreadPlan]) -> None:
    """The peer has no REST API and no persistence: a room is whatever id the swarm names."""
    for plan in threads:
        plan.thread_id = plan.thread_id or str(uuid.uuid4())
        plan.group_id = plan.group_id or str(uuid.uuid4())
