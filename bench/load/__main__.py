"""`python -m bench.load`: run a WebSocket load scenario and report. See bench/README.md."""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import trio

from bench.load import report
from bench.load.capacity import BOUND_P99_MS
from bench.load.provision import ProvisioningFailed
from bench.load.redis_server import RedisFailed
from bench.load.run import RunFailed, TargetOptions, run_once
from bench.load.scenario import Scenario, Step
from bench.load.server import ServerFailed
from bench.load.system import LimitTooLow, machine, raise_open_files_limit

# Around the hub's capacity measured with 10,000 sockets on PostgreSQL (about 1,200 msg/s) and on
# to where the peer, or the swarm on its one core, gives out; a sweep stops at its first step
# over the bound, so the steps past the hub's limit cost nothing.
DEFAULT_SWEEP = "250,500,750,1000,1250,1500,2000,2500,3000"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.load",
        description="Drive the hub (and/or the websockets peer) with a socket swarm; check that "
        "nothing is lost, duplicated or reordered; write JSON, a PNG plot and a table.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    shape = parser.add_argument_group("scenario")
    shape.add_argument("--sockets", type=int, default=500, help="sockets, one per member")
    shape.add_argument("--members-per-thread", type=int, default=10)
    shape.add_argument("--senders", type=int, help="sending sockets (default: one per thread)")
    shape.add_argument(
        "--rate",
        help="messages/s, all senders together (default 50); a comma list runs one step per "
        "rate over the same sockets, every one of them",
    )
    shape.add_argument(
        "--sweep",
        nargs="?",
        const=DEFAULT_SWEEP,
        metavar="R1,R2,...",
        help="capacity sweep: one step per rate, ascending, over the same sockets, stopping "
        f"after the first step whose delivery p99 exceeds {BOUND_P99_MS:g} ms; reports the "
        "highest rate within that bound with every check passing, for the hub and the peer "
        f"(--target both unless --target says otherwise). Without rates: {DEFAULT_SWEEP}",
    )
    shape.add_argument("--duration", type=float, default=10.0, help="seconds per step")
    shape.add_argument("--ramp-rate", type=float, default=500.0, help="new sockets per second")
    shape.add_argument(
        "--hold", type=float, default=0.0, help="seconds idle (heartbeats only) before sending"
    )
    shape.add_argument("--message-bytes", type=int, default=200, help="message body size")
    shape.add_argument("--drain", type=float, default=15.0, help="max wait for stragglers")
    where = parser.add_argument_group("target")
    where.add_argument(
        "--target",
        help="hub (start one; the default), peer (start the websockets peer), both (hub, then "
        "peer, same scenario; the default with --sweep), or a ws:// URL of a running hub",
    )
    where.add_argument(
        "--hubs",
        type=int,
        default=1,
        help="hub nodes to start, sharing one fresh database (PostgreSQL: give --database) and "
        "one private redis-server the bench starts on a free port; member k of thread t "
        "connects to node (t + k) mod N",
    )
    where.add_argument(
        "--redis",
        action="store_true",
        help="with one hub node, start the private Redis for it too (to compare with several)",
    )
    where.add_argument(
        "--database",
        default="sqlite",
        help="for a started hub: sqlite (a fresh file) or a postgresql:// URL of a server on "
        "which a fresh database is created and dropped afterwards",
    )
    where.add_argument("--keep-database", action="store_true", help="do not drop it")
    where.add_argument(
        "--hub-env", action="append", default=[], metavar="KEY=VALUE", help="extra HUB_* setting"
    )
    where.add_argument("--rest-url", help="with a ws:// target: its REST base for provisioning")
    where.add_argument("--database-url", help="with a ws:// target: its database, to check")
    where.add_argument("--server-pid", type=int, help="with a ws:// target: pid to sample")
    swarm = parser.add_argument_group("swarm")
    swarm.add_argument("--swarm-processes", type=int, default=1)
    swarm.add_argument(
        "--client",
        default="wire",
        choices=["wire", "trio-websocket"],
        help="the swarm's WebSocket client: a bare RFC 6455 client (bench/load/wire.py) or the "
        "trio-websocket library",
    )
    swarm.add_argument(
        "--source-addresses", type=int, default=0, help="127.0.0.2… to bind (0: automatic)"
    )
    output = parser.add_argument_group("output")
    output.add_argument("--out", type=Path, help="directory for results (default bench/results/…)")
    output.add_argument("--no-plot", action="store_true")
    output.add_argument("--no-progress", action="store_true", help="no live display (CI logs)")
    return parser


def scenario_from(args: argparse.Namespace) -> Scenario:
    if args.sweep is not None and args.rate is not None:
        raise ValueError("give --rate (every step runs) or --sweep (stops at the bound), not both")
    if args.sweep is not None:
        rates = sorted(float(r) for r in args.sweep.split(",") if r.strip())
    else:
        rates = [float(r) for r in (args.rate or "50").split(",") if r.strip()]
    if not rates:
        raise ValueError("--rate and --sweep need at least one rate")
    scenario = Scenario(
        sockets=args.sockets,
        members_per_thread=args.members_per_thread,
        senders=args.senders,
        steps=tuple(Step(rate=r, duration_s=args.duration) for r in rates),
        ramp_rate=args.ramp_rate,
        hold_s=args.hold,
        message_bytes=args.message_bytes,
        drain_s=args.drain,
        swarm_processes=args.swarm_processes,
        source_addresses=args.source_addresses,
        client=args.client,
        sweep=args.sweep is not None,
    )
    scenario.validate()
    return scenario


def targets_from(args: argparse.Namespace) -> list[TargetOptions]:
    target = args.target or ("both" if args.sweep is not None else "hub")
    if args.hubs < 1:
        raise ValueError("--hubs must be at least 1")
    if (args.hubs > 1 or args.redis) and target not in ("hub", "both"):
        raise ValueError("--hubs and --redis are for a hub the bench starts (--target hub or both)")
    if args.hubs > 1 and not args.database.startswith("postgres"):
        raise ValueError(
            "--hubs N > 1 needs --database postgresql://…: the nodes share one database, and "
            "SQLite cannot be shared across processes here"
        )
    hub = TargetOptions(
        "hub",
        database=args.database,
        keep_database=args.keep_database,
        hub_env=tuple(args.hub_env),
        hubs=args.hubs,
        redis=args.redis,
    )
    if target == "hub":
        return [hub]
    if target == "peer":
        return [TargetOptions("peer")]
    if target == "both":
        return [hub, TargetOptions("peer")]
    if target.startswith("ws://"):
        return [
            TargetOptions(
                "url",
                url=target,
                rest_url=args.rest_url,
                database_url=args.database_url,
                server_pid=args.server_pid,
            )
        ]
    raise ValueError(f"--target must be hub, peer, both or a ws:// URL, got {target!r}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        scenario = scenario_from(args)
        targets = targets_from(args)
    except ValueError as exc:
        print(f"bench.load: {exc}", file=sys.stderr)
        return 2
    raise_open_files_limit()
    out = args.out or Path("bench/results") / time.strftime("load-%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    command = "python -m bench.load " + shlex.join(sys.argv[1:] if argv is None else argv)
    full: dict = {"command": command, "machine": machine(), "runs": []}
    try:
        for options in targets:
            run_dir = out / options.kind
            run_dir.mkdir(parents=True, exist_ok=True)
            outcome = trio.run(
                lambda o=options, d=run_dir: run_once(
                    scenario, o, d, show_progress=not args.no_progress
                )
            )
            full["runs"].append(outcome)
    except (
        LimitTooLow,
        ServerFailed,
        RedisFailed,
        RunFailed,
        ProvisioningFailed,
        BaseExceptionGroup,
    ) as exc:
        problem = _known_problem(exc)
        if problem is None:
            raise
        print(f"bench.load: {problem}", file=sys.stderr)
        if full["runs"]:
            report.write_json(full, out / "result.json")
        return 2
    kinds = [r["target"] for r in full["runs"]]
    if "hub" in kinds and "peer" in kinds:
        full["comparison"] = report.compare(
            full["runs"][kinds.index("hub")], full["runs"][kinds.index("peer")]
        )
    full["passed"] = all(c["passed"] is not False for r in full["runs"] for c in r["checks"])
    report.write_json(full, out / "result.json")
    if not args.no_plot:
        report.plot(full, out / "load.png")
    report.print_table(full)
    print(f"results: {out / 'result.json'}" + ("" if args.no_plot else f", {out / 'load.png'}"))
    return 0 if full["passed"] else 1


def _known_problem(exc: BaseException) -> BaseException | None:
    """The operator-facing failure inside Trio's exception groups, or None for a bug."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    known = (LimitTooLow, ServerFailed, RedisFailed, RunFailed, ProvisioningFailed)
    return exc if isinstance(exc, known) else None


if __name__ == "__main__":
    sys.exit(main())
