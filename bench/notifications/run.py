"""One run: a webhook receiver, a fresh hub, a group with its threads, then the two phases.

The hub is `python -m hub serve` started by `bench.load.server` (fresh database and secrets,
free ports, quiet logs) with the REST rate limits out of the way and
`HUB_WEBHOOK_ALLOW_HOSTS=127.0.0.1:<receiver port>`: the SSRF guard refuses a loopback webhook
unless an operator allows it, and this allows exactly the receiver. The receiver starts first,
in the same Trio run as the posting workers, so its port is known before the hub is.

The world, made over REST: the senders' organizations and three more, each with one user whose
display name the notifying messages mention (`@Ada Florist` …), all members of one group with
`--threads` threads; each of the three organizations has a webhook for `mention` at the
receiver. Then, on that one hub:

1. warm-up: `--warmup` seconds of plain messages, and one notifying message per thread whose
   deliveries must all arrive (so a refused webhook fails the run before anything is measured);
2. **plain**: `--concurrency` workers post messages without mentions, closed loop, for
   `--seconds`;
3. **notifying**: the same with the three mentions, so every message writes three notifications
   with their in-app and webhook deliveries in its transaction, and the dispatcher sends three
   webhook requests; after posting stops, the bench waits (at most `--drain-timeout`) until
   every expected delivery has arrived.

Plain runs first, on the smaller database; a message stored in plain makes notifying's database
a little larger, which on SQLite and PostgreSQL alike costs far less than the notifications do.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import trio

from bench.load import server, system
from bench.load.provision import TOKEN_TTL_S
from bench.notifications.client import Answer, Connection
from bench.notifications.receiver import HOOK_PREFIX, Delivery, Receiver
from hub.auth import issue_token
from hub.config import load_settings

ROOT = Path(__file__).resolve().parents[2]
BASE = server.REST_BASE
HOST = "127.0.0.1"
MENTIONED_NAMES = ("Ada Florist", "Ben Caterer", "Cleo Musician")
EVENT = "mention"
WARMUP_DELIVERY_TIMEOUT_S = 30.0
METRICS_SETTLE_S = 10.0
SAMPLE_S = 1.0
OUTCOMES = ("delivered", "retry", "held", "dead")  # hub.actors.dispatcher's Outcome kinds
RAISED_RATES = {
    **{f"HUB_RATE_{kind}_PER_S": "1000000" for kind in ("READ", "WRITE", "SEND")},
    **{f"HUB_RATE_{kind}_BURST": "1000000" for kind in ("READ", "WRITE", "SEND")},
}


class BenchFailed(Exception):
    pass


@dataclass
class Options:
    seconds: float = 10.0
    senders: int = 4
    concurrency: int = 8
    threads: int = 4
    warmup_s: float = 1.0
    drain_timeout_s: float = 120.0
    database_url: str | None = None  # a PostgreSQL server; None: a fresh SQLite file
    out: Path = Path("bench/results/notifications")
    hub_env: list[str] = field(default_factory=list)
    keep_database: bool = False
    progress: Callable[[str], None] = lambda line: None


@dataclass
class User:
    user_id: str
    org_id: str
    token: str
    name: str


@dataclass
class World:
    senders: list[User]  # senders[0] owns the group
    mentioned: list[User]  # one per organization with a webhook
    threads: int
    group_id: str = ""
    thread_ids: list[str] = field(default_factory=list)


@dataclass
class Posted:
    """A message the hub acknowledged with 201."""

    phase: str
    thread_id: str
    seq: int
    created_at: float  # Unix seconds, from the answer
    latency_s: float
    notifying: bool


@dataclass
class Phase:
    name: str
    posted: list[Posted] = field(default_factory=list)
    duplicates: int = 0  # answered 200: a repeated client_msg_id (a resent request)
    failures: dict[str, int] = field(default_factory=dict)  # status (or error) → count
    started_at: float = 0.0  # time.time()
    ended_at: float = 0.0
    elapsed_s: float = 0.0
    cpu_s: float = 0.0  # the hub process's user + system CPU while it ran
    bench_cpu_s: float = 0.0  # this process's (workers and receiver): was the client the limit?
    series: list[dict[str, float]] = field(default_factory=list)


def run(options: Options) -> dict[str, Any]:
    """The whole run, with the result as one dict (what result.json holds)."""
    started_at = time.time()
    machine = system.machine()
    out = options.out
    out.mkdir(parents=True, exist_ok=True)
    database_url = None
    dropped = None
    try:
        if options.database_url:
            database_url = server.create_postgres_database(options.database_url)
        else:
            for stale in out.glob("hub.db*"):
                stale.unlink()
            database_url = f"sqlite:///{out / 'hub.db'}"
        measured = trio.run(_run, options, database_url)
    finally:
        if options.database_url and database_url and not options.keep_database:
            server.drop_postgres_database(database_url)
            dropped = True
        elif not options.database_url and not options.keep_database:
            for path in out.glob("hub.db*"):
                path.unlink()
        shutil.rmtree(out / "var", ignore_errors=True)
    return {
        "bench": "notifications",
        "command": [sys.executable, "-m", "bench.notifications", *sys.argv[1:]],
        "started_at": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started_at)),
        "commit": _commit(),
        "machine": machine,
        "load_average_at_end": os.getloadavg(),
        "database": "postgresql" if options.database_url else "sqlite",
        "database_name": database_url.rsplit("/", 1)[-1] if options.database_url else None,
        "database_dropped": dropped,
        "scenario": {
            "seconds": options.seconds,
            "senders": options.senders,
            "concurrency": options.concurrency,
            "threads": options.threads,
            "warmup_s": options.warmup_s,
            "mentions_per_message": len(MENTIONED_NAMES),
            "webhooks": len(MENTIONED_NAMES),
            "webhook_event": EVENT,
        },
        **measured,
    }


async def _run(options: Options, database_url: str) -> dict[str, Any]:
    receiver = Receiver()
    async with trio.open_nursery() as nursery:
        port = await nursery.start(receiver.serve)
        env = server.hub_settings_env(database_url, options.out / "var")
        settings_notes = {**RAISED_RATES, "HUB_WEBHOOK_ALLOW_HOSTS": f"{HOST}:{port}"}
        for item in options.hub_env:
            key, _, value = item.partition("=")
            settings_notes[key.strip()] = value.strip()
        env.update(settings_notes)
        log_path = options.out / "hub.log"
        node = await trio.to_thread.run_sync(server.start_hub, env, log_path)
        status: int | None = None
        try:
            measured = await _measure(options, env, node, receiver, port)
        except BaseException:
            options.progress(f"hub log ({log_path}):\n{_tail(log_path)}")
            raise
        finally:
            with trio.CancelScope(shield=True):
                status = (await trio.to_thread.run_sync(server.stop_nodes, [node]))[0]
        nursery.cancel_scope.cancel()  # the receiver
    return {"hub_settings": settings_notes, "hub_exit_status": status, **measured}


async def _measure(
    options: Options, env: dict[str, str], node: server.Node, receiver: Receiver, port: int
) -> dict[str, Any]:
    assert node.pid is not None
    http_port = int(env["HUB_HTTP_PORT"])
    world = _plan(options, env)
    rest = Connection(HOST, http_port)
    try:
        options.progress("provisioning: a group, its threads, three webhooks")
        await _provision(rest, world, receiver, port)

        options.progress(f"warm-up: {options.warmup_s:g} s plain, one notifying per thread")
        warmup = await _post_phase(
            "warmup",
            options,
            world,
            http_port,
            node.pid,
            receiver,
            seconds=options.warmup_s,
            notifying=False,
        )
        warm_notes = await _post_one_each(rest, world)
        warmup.posted += warm_notes
        await _wait_for(
            receiver,
            _expected(warm_notes, world),
            WARMUP_DELIVERY_TIMEOUT_S,
            "the warm-up's webhook deliveries",
        )

        options.progress(f"plain: {options.concurrency} workers for {options.seconds:g} s")
        plain = await _post_phase(
            "plain",
            options,
            world,
            http_port,
            node.pid,
            receiver,
            seconds=options.seconds,
            notifying=False,
        )
        before = await _delivery_metrics(rest)

        options.progress(f"notifying: {options.concurrency} workers for {options.seconds:g} s")
        notifying = await _post_phase(
            "notifying",
            options,
            world,
            http_port,
            node.pid,
            receiver,
            seconds=options.seconds,
            notifying=True,
        )
        expected = _expected(notifying.posted, world)
        options.progress(f"drain: waiting for {len(expected)} webhook deliveries")
        drained = await _drain(receiver, expected, options.drain_timeout_s)
        after = await _settled_metrics(rest, before, len(expected))
        stored = await _stored(rest, world)
        samples = await _samples(rest, world, plain, notifying)
    finally:
        await rest.aclose()

    deliveries = _deliveries(receiver, world, [warmup, plain, notifying], notifying, drained)
    phases = {p.name: _phase_figures(p) for p in (plain, notifying)}
    phases["warmup"] = {"messages": len(warmup.posted), "elapsed_s": round(warmup.elapsed_s, 3)}
    acked = sum(len(p.posted) for p in (warmup, plain, notifying))
    plain_rate = phases["plain"]["msgs_per_s"]
    ratio = phases["notifying"]["msgs_per_s"] / plain_rate if plain_rate else None
    metrics = _difference(after, before)
    in_plain = sum(
        1 for d in receiver.deliveries if plain.started_at <= d.arrived_at <= plain.ended_at
    )
    checks = {
        "every acknowledged message stored once": stored["total"] == acked
        and all(p.duplicates == 0 for p in (warmup, plain, notifying)),
        "no POST failed": not any(p.failures for p in (warmup, plain, notifying)),
        "mentions resolved (metadata.mentions names the three users)": samples["notifying_ok"]
        and samples["plain_ok"],
        "every expected webhook delivery arrived": deliveries["missing"] == 0,
        "no duplicate deliveries": deliveries["duplicates"] == 0,
        "every signature and timestamp valid": deliveries["signature_invalid"] == 0
        and deliveries["timestamp_invalid"] == 0,
        "every delivery well formed": deliveries["malformed"] == 0,
        "no unexpected deliveries (none for plain messages)": deliveries["unexpected"] == 0
        and receiver.refused == 0
        and in_plain == 0,
    }
    return {
        "phases": phases,
        "notifying_vs_plain_msgs_per_s": None if ratio is None else round(ratio, 3),
        "deliveries": deliveries,
        "deliveries_during_plain": in_plain,
        "hub_delivery_metrics": {"notifying_phase": metrics, "whole_run": after},
        "stored": stored,
        "acknowledged": acked,
        "mention_samples": samples,
        "checks": checks,
        "passed": all(checks.values()),
    }


def _plan(options: Options, env: dict[str, str]) -> World:
    """Users and organizations, with tokens signed by the hub's secret (`hub token`'s path)."""
    settings = load_settings(environ=env)

    def user(name: str) -> User:
        user_id, org_id = uuid.uuid4(), uuid.uuid4()
        token = issue_token(
            settings, user_id=user_id, org_id=org_id, role="owner", name=name, ttl_s=TOKEN_TTL_S
        )
        return User(str(user_id), str(org_id), token, name)

    return World(
        senders=[user(f"Sender {i + 1}") for i in range(options.senders)],
        mentioned=[user(name) for name in MENTIONED_NAMES],
        threads=options.threads,
    )


async def _provision(rest: Connection, world: World, receiver: Receiver, port: int) -> None:
    """The group (its owner is the first sender), every other organization invited and
    accepting (which also makes each user known to the hub, so their names can be mentioned),
    the threads, and a webhook per mentioned organization with its secret kept."""
    owner = world.senders[0]
    group = await _ok(rest, "POST", "/groups", owner.token, {"name": "Bench wedding"})
    world.group_id = group["id"]
    for member in [*world.senders[1:], *world.mentioned]:
        invite = {"organization_id": member.org_id, "vendor_type": "photographer"}
        await _ok(rest, "POST", f"/groups/{world.group_id}", owner.token, invite)
        await _ok(rest, "POST", f"/groups/{world.group_id}/accept", member.token)
    for index in range(world.threads):
        thread = await _ok(
            rest,
            "POST",
            "/threads",
            owner.token,
            {"group_id": world.group_id, "title": f"Bench thread {index}"},
        )
        world.thread_ids.append(thread["id"])
    for member in world.mentioned:
        url = f"http://{HOST}:{port}{HOOK_PREFIX}{member.org_id}"
        hook = await _ok(rest, "POST", "/webhooks", member.token, {"url": url, "events": [EVENT]})
        receiver.secrets[member.org_id] = hook["secret"].encode()


async def _ok(rest: Connection, method: str, path: str, token: str, body: Any = None) -> Any:
    answer = await rest.request(method, BASE + path, token=token, body={} if body is None else body)
    if answer.status >= 300:
        raise BenchFailed(f"{method} {path} answered {answer.status}: {_snippet(answer)}")
    return answer.json()


def _body(notifying: bool, worker: int, index: int) -> str:
    """The same words either way; only the `@` signs make mentions of them."""
    at = "@" if notifying else ""
    names = [f"{at}{name}" for name in MENTIONED_NAMES]
    return (
        f"{names[0]}, {names[1]} and {names[2]}: the tent goes up at 3 pm "
        f"(update {index} from worker {worker})."
    )


async def _post_phase(
    name: str,
    options: Options,
    world: World,
    http_port: int,
    pid: int,
    receiver: Receiver,
    *,
    seconds: float,
    notifying: bool,
) -> Phase:
    """`--concurrency` closed-loop workers posting for `seconds`, each on its own keep-alive
    connection, worker w as sender w mod senders into thread w mod threads; with a sample of
    what was acknowledged and delivered every second."""
    phase = Phase(name)
    deadline = trio.current_time() + seconds

    async def worker(w: int) -> None:
        sender = world.senders[w % len(world.senders)]
        thread_id = world.thread_ids[w % len(world.thread_ids)]
        conn = Connection(HOST, http_port)
        index = 0
        try:
            while trio.current_time() < deadline:
                body = {"body": _body(notifying, w, index), "client_msg_id": f"{name}-{w}-{index}"}
                index += 1
                try:
                    answer = await conn.request(
                        "POST", f"{BASE}/threads/{thread_id}", token=sender.token, body=body
                    )
                except Exception as exc:
                    _count(phase.failures, type(exc).__name__)
                    continue
                if answer.status == 201:
                    ack = answer.json()
                    phase.posted.append(
                        Posted(
                            name,
                            thread_id,
                            ack["seq"],
                            _unix(ack["created_at"]),
                            answer.elapsed_s,
                            notifying,
                        )
                    )
                elif answer.status == 200:
                    phase.duplicates += 1
                else:
                    _count(phase.failures, str(answer.status))
        finally:
            await conn.aclose()

    async def sample() -> None:
        began = time.perf_counter()
        delivered_before = len(receiver.deliveries)
        while True:
            await trio.sleep(SAMPLE_S)
            acknowledged = len(phase.posted)
            delivered = len(receiver.deliveries) - delivered_before
            point = {
                "t_s": round(time.perf_counter() - began, 3),
                "acknowledged": acknowledged,
                "deliveries_received": delivered,
            }
            if notifying:  # what the dispatcher still owes the receiver
                point["deliveries_behind"] = len(MENTIONED_NAMES) * acknowledged - delivered
            phase.series.append(point)

    cpu_before, bench_before = _cpu_s(pid), time.process_time()
    phase.started_at = time.time()
    began = time.perf_counter()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(sample)
        async with trio.open_nursery() as workers:
            for w in range(options.concurrency):
                workers.start_soon(worker, w)
        nursery.cancel_scope.cancel()
    phase.elapsed_s = time.perf_counter() - began
    phase.ended_at = time.time()
    phase.cpu_s = _cpu_s(pid) - cpu_before
    phase.bench_cpu_s = time.process_time() - bench_before
    options.progress(
        f"{name}: {len(phase.posted)} messages in {phase.elapsed_s:.1f} s "
        f"({len(phase.posted) / phase.elapsed_s:.1f}/s)"
        if phase.elapsed_s
        else f"{name}: nothing posted"
    )
    return phase


async def _post_one_each(rest: Connection, world: World) -> list[Posted]:
    """One notifying message per thread, from the group's owner."""
    posted = []
    for index, thread_id in enumerate(world.thread_ids):
        answer = await rest.request(
            "POST",
            f"{BASE}/threads/{thread_id}",
            token=world.senders[0].token,
            body={"body": _body(True, -1, index), "client_msg_id": f"warmup-note-{index}"},
        )
        if answer.status != 201:
            raise BenchFailed(f"a warm-up message answered {answer.status}: {_snippet(answer)}")
        ack = answer.json()
        posted.append(
            Posted(
                "warmup", thread_id, ack["seq"], _unix(ack["created_at"]), answer.elapsed_s, True
            )
        )
    return posted


def _expected(posted: list[Posted], world: World) -> dict[tuple[str, int, str], Posted]:
    """The webhook deliveries these messages must cause: one per mentioned organization."""
    return {
        (p.thread_id, p.seq, member.org_id): p
        for p in posted
        if p.notifying
        for member in world.mentioned
    }


async def _wait_for(
    receiver: Receiver, expected: dict[tuple[str, int, str], Posted], timeout_s: float, what: str
) -> None:
    with trio.move_on_after(timeout_s):
        await receiver.wait_for(set(expected))
        return
    got = len(expected.keys() & receiver.first.keys())
    raise BenchFailed(
        f"{what}: {got} of {len(expected)} arrived within {timeout_s:g} s "
        f"({len(receiver.deliveries)} requests received, {receiver.refused} refused); "
        "is the receiver allowed by HUB_WEBHOOK_ALLOW_HOSTS? see hub.log"
    )


async def _drain(
    receiver: Receiver, expected: dict[tuple[str, int, str], Posted], timeout_s: float
) -> dict[str, Any]:
    """Wait until every expected delivery has arrived, at most `timeout_s`."""
    began = time.time()
    with trio.move_on_after(timeout_s):
        await receiver.wait_for(set(expected))
    arrived = receiver.first
    got = [arrived[k].arrived_at for k in expected if k in arrived]
    return {
        "complete": len(got) == len(expected),
        "waited_s": round(time.time() - began, 3),
        "last_arrival": max(got) if got else None,
    }


async def _delivery_metrics(rest: Connection) -> dict[str, dict[str, float]]:
    """`hub_notification_deliveries_total{channel,outcome}` from the hub's /metrics."""
    answer = await rest.request("GET", "/metrics")
    if answer.status != 200:
        raise BenchFailed(f"GET /metrics answered {answer.status}")
    counts: dict[str, dict[str, float]] = {}
    for line in answer.body.decode(errors="replace").splitlines():
        if not line.startswith("hub_notification_deliveries_total{"):
            continue
        labels, _, value = line.rpartition(" ")
        parts = dict(
            item.split("=", 1) for item in labels[labels.index("{") + 1 : -1].split(",") if item
        )
        channel, outcome = parts["channel"].strip('"'), parts["outcome"].strip('"')
        counts.setdefault(channel, {})[outcome] = float(value)
    return _outcomes(counts)


async def _settled_metrics(
    rest: Connection, before: dict[str, dict[str, float]], expected: int
) -> dict[str, dict[str, float]]:
    """The counters once the dispatcher has recorded what the receiver got (it counts after
    writing the outcomes, a moment after the answer), at most METRICS_SETTLE_S later."""
    with trio.move_on_after(METRICS_SETTLE_S):
        while True:
            after = await _delivery_metrics(rest)
            done = _difference(after, before).get("webhook", {}).get("delivered", 0)
            if done >= expected:
                return after
            await trio.sleep(0.1)
    return await _delivery_metrics(rest)


def _difference(
    after: dict[str, dict[str, float]], before: dict[str, dict[str, float]]
) -> dict[str, dict[str, float]]:
    return {
        channel: {k: v - before.get(channel, {}).get(k, 0.0) for k, v in outcomes.items()}
        for channel, outcomes in after.items()
    }


def _outcomes(counts: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """Every outcome of every channel seen, 0 where the hub has not counted one yet (a label
    appears on /metrics only once it has been incremented)."""
    return {
        channel: {o: outcomes.get(o, 0.0) for o in (*OUTCOMES, *outcomes)}
        for channel, outcomes in counts.items()
    }


async def _stored(rest: Connection, world: World) -> dict[str, Any]:
    """Messages stored per thread: the seq of its latest (seqs run 1..N, docs/storage.md)."""
    per_thread = {}
    for thread_id in world.thread_ids:
        page = await _ok(rest, "GET", f"/threads/{thread_id}?limit=1", world.senders[0].token)
        messages = page["messages"]
        per_thread[thread_id] = messages[-1]["seq"] if messages else 0
    return {"total": sum(per_thread.values()), "per_thread": per_thread}


async def _samples(
    rest: Connection, world: World, plain: Phase, notifying: Phase
) -> dict[str, Any]:
    """A stored message of each measured phase read back: the notifying one must name the
    three users in `metadata.mentions`, the plain one nobody."""

    async def read(posted: Posted) -> dict[str, Any]:
        page = await _ok(
            rest,
            "GET",
            f"/threads/{posted.thread_id}?after_seq={posted.seq - 1}&limit=1",
            world.senders[0].token,
        )
        return page["messages"][0] if page["messages"] else {}

    result: dict[str, Any] = {"plain_ok": False, "notifying_ok": False}
    if plain.posted:
        message = await read(plain.posted[-1])
        result["plain_mentions"] = message.get("metadata", {}).get("mentions")
        result["plain_ok"] = bool(message) and result["plain_mentions"] is None
    if notifying.posted:
        message = await read(notifying.posted[-1])
        mentions = message.get("metadata", {}).get("mentions") or {}
        result["notifying_mentions"] = mentions
        named = {u.get("id") for u in mentions.get("users", [])}
        result["notifying_ok"] = named == {m.user_id for m in world.mentioned}
    return result


def _deliveries(
    receiver: Receiver,
    world: World,
    phases: list[Phase],
    notifying: Phase,
    drained: dict[str, Any],
) -> dict[str, Any]:
    """Every request the receiver took, matched with the messages that should have caused it."""
    expected_all = _expected([p for phase in phases for p in phase.posted], world)
    expected = _expected(notifying.posted, world)
    user_of = {m.org_id: m.user_id for m in world.mentioned}
    seen: set[str] = set()
    first: dict[tuple[str, int, str], Delivery] = {}
    duplicates = unexpected = malformed = bad_signature = bad_timestamp = 0
    for d in receiver.deliveries:
        bad_signature += not d.signature_ok
        bad_timestamp += not d.timestamp_ok
        key = d.key
        posted = expected_all.get(key)
        well_formed = (
            d.body_ok
            and d.event == EVENT
            and d.idempotency_key == d.delivery_id != ""
            and d.user_ids == [user_of.get(d.path_org)]
            and posted is not None
            and d.message_created_at is not None
            and abs(d.message_created_at - posted.created_at) < 0.002
        )
        malformed += not well_formed and posted is not None
        if d.delivery_id in seen:
            duplicates += 1
            continue
        seen.add(d.delivery_id)
        if posted is None:
            unexpected += 1
        else:
            first.setdefault(key, d)
    arrived = [first[k] for k in expected if k in first]
    lags_ms = [(d.arrived_at - expected[d.key].created_at) * 1000 for d in arrived]
    window = notifying.ended_at - notifying.started_at
    while_posting = sum(1 for d in arrived if d.arrived_at <= notifying.ended_at)
    last = drained["last_arrival"]
    span = (last - notifying.started_at) if last is not None else 0.0
    return {
        "expected": len(expected),
        "received": len(arrived),
        "missing": len(expected) - len(arrived),
        "requests": len(receiver.deliveries),
        "duplicates": duplicates,
        "unexpected": unexpected,
        "malformed": malformed,
        "refused": receiver.refused,
        "signature_invalid": bad_signature,
        "timestamp_invalid": bad_timestamp,
        "received_while_posting": while_posting,
        "per_s_while_posting": round(while_posting / window, 1) if window > 0 else None,
        "per_s_overall": round(len(arrived) / span, 1) if span > 0 else None,
        "lag_ms": _percentiles(lags_ms),
        "drain_s": round(max(0.0, last - notifying.ended_at), 3) if last is not None else None,
        "drain_complete": drained["complete"],
        "drain_waited_s": drained["waited_s"],
    }


def _phase_figures(phase: Phase) -> dict[str, Any]:
    count = len(phase.posted)
    return {
        "messages": count,
        "elapsed_s": round(phase.elapsed_s, 3),
        "msgs_per_s": round(count / phase.elapsed_s, 1) if phase.elapsed_s else 0.0,
        "post_latency_ms": _percentiles([p.latency_s * 1000 for p in phase.posted]),
        "hub_cpu_ms_per_message": round(phase.cpu_s * 1000 / count, 3) if count else None,
        "hub_cpu_percent": round(100 * phase.cpu_s / phase.elapsed_s, 1)
        if phase.elapsed_s
        else None,
        "bench_cpu_percent": round(100 * phase.bench_cpu_s / phase.elapsed_s, 1)
        if phase.elapsed_s
        else None,
        "duplicates_answered": phase.duplicates,
        "failures": phase.failures,
        "series": phase.series,
    }


def _percentiles(values: list[float]) -> dict[str, float | None]:
    ordered = sorted(values)

    def at(q: float) -> float | None:
        if not ordered:
            return None
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)

    return {"p50": at(0.50), "p99": at(0.99), "max": at(1.0), "count": len(ordered)}


def _cpu_s(pid: int) -> float:
    """User + system CPU of the hub process so far, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _unix(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def _count(counts: dict[str, int], key: str) -> None:
    counts[key] = counts.get(key, 0) + 1


def _snippet(answer: Answer) -> str:
    return answer.body[:300].decode(errors="replace")


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def write_json(result: dict[str, Any], path: Path) -> None:
    """result.json: every figure, series and check of the run."""
    path.write_text(json.dumps(result, indent=1, default=str, allow_nan=False) + "\n")
