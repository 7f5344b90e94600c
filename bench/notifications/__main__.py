"""The cost of notifications on the message path: messages/s with and without three mentions
and a webhook per message, in one run on one fresh hub.

    python -m bench.notifications                         # 10 s a phase, SQLite
    python -m bench.notifications --seconds 20 --concurrency 8
    python -m bench.notifications --database-url postgresql://postgres@127.0.0.1:5432/postgres

The hub runs as its own process (`python -m hub serve`, started as bench.load starts it) and
delivers its webhooks to a receiver this bench runs on a free loopback port (allowed with
HUB_WEBHOOK_ALLOW_HOSTS). Two phases of `--seconds` each, closed loop with `--concurrency`
workers over REST (POST /threads/{id}): *plain* messages, then *notifying* ones that mention
three users of three other organizations, each with a webhook. Reported: messages/s and POST
p50/p99 of each, the ratio notifying ÷ plain, webhook deliveries per second, delivery lag
(arrival at the receiver - the message's created_at) p50/p99, the drain after posting stops,
duplicates and signatures (checked by the receiver), retries and dead letters (the hub's
/metrics). Exits 0 only when every check passed.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench.notifications import report
from bench.notifications.run import Options, run, write_json


def _positive(kind: Callable[[str], float]) -> Callable[[str], float]:
    """An argparse type: `kind` of the text, refused unless above zero."""

    def parse(text: str) -> float:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
        return value

    return parse


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, run, print the tables, write result.json; 0 when all passed."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.notifications",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--seconds", type=_positive(float), default=10.0, help="a phase's length")
    parser.add_argument("--concurrency", type=_positive(int), default=8, help="posting workers")
    parser.add_argument("--senders", type=_positive(int), default=4, help="sending users")
    parser.add_argument("--threads", type=_positive(int), default=4, help="threads posted to")
    parser.add_argument(
        "--warmup", type=float, default=1.0, help="seconds of plain messages before measuring"
    )
    parser.add_argument(
        "--drain-timeout",
        type=_positive(float),
        default=120.0,
        help="the longest wait for the deliveries after posting stops",
    )
    parser.add_argument(
        "--database-url",
        help="a PostgreSQL server to run on, in a fresh database created and dropped there "
        "(default: a fresh SQLite file)",
    )
    parser.add_argument(
        "--keep-database", action="store_true", help="keep the SQLite file or PostgreSQL database"
    )
    parser.add_argument(
        "--hub-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="another setting for the hub (repeatable)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="directory for result.json and hub.log (default bench/results/notifications-…)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = parser.parse_args(argv)
    options = Options(
        seconds=args.seconds,
        senders=args.senders,
        concurrency=args.concurrency,
        threads=args.threads,
        warmup_s=max(0.0, args.warmup),
        drain_timeout_s=args.drain_timeout,
        database_url=args.database_url,
        out=args.out or Path("bench/results") / time.strftime("notifications-%Y%m%d-%H%M%S"),
        hub_env=args.hub_env,
        keep_database=args.keep_database,
        progress=(lambda line: None) if args.quiet else _to_stderr,
    )
    result = run(options)
    write_json(result, options.out / "result.json")
    report.print_table(result)
    print(f"result: {options.out / 'result.json'}")
    return 0 if result["passed"] else 1


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
