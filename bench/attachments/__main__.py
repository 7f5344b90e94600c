"""Attachment throughput through a whole running hub, against a plain file copy, and the hub's
memory while it takes a large upload.

    python -m bench.attachments                              # 1 MiB 20 times, 100 MiB 3 times
    python -m bench.attachments --sizes 1MiB,10MiB,100MiB --repeat 10,5,3
    python -m bench.attachments --database-url postgresql://postgres@127.0.0.1:5432/postgres
    python -m bench.attachments --json /tmp/attachments.json

The hub runs as its own process (`python -m hub serve`, started as bench.load starts it), so
its RSS can be read from /proc. Per size, `--repeat` times in turn: the source file copied on
the same file system as the hub's blob store (fsynced and renamed into place, as the store
writes a blob), uploaded over HTTP (POST /threads/{id}/attachments, the body streamed from the
file), and downloaded (GET /attachments/{id}, counted and dropped). Reported: MB/s of each
(median, min, max), the hub's ÷ the copy's, and the hub's RSS: its idle RSS just before the
size's first upload (after a 1 MiB warm-up upload and download), the peak above it while
uploads and downloads ran (VmRSS sampled every 10 ms from a thread), and VmHWM.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from bench.attachments import report
from bench.attachments.run import Options, default_repeat, run

_UNITS = {"": 1, "b": 1, "kib": 1024, "mib": 1024**2, "gib": 1024**3}
_SIZE = re.compile(r"\s*(\d+)\s*([a-zA-Z]*)\s*")


def parse_size(text: str) -> int:
    """`64KiB`, `1MiB`, `100 MiB`, `4096`: bytes."""
    match = _SIZE.fullmatch(text)
    unit = match and _UNITS.get(match.group(2).lower())
    if not match or unit is None or int(match.group(1)) == 0:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (say 64KiB, 1MiB, 100MiB)")
    return int(match.group(1)) * unit


def _sizes(text: str) -> list[int]:
    return [parse_size(part) for part in text.split(",")]


def _repeats(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a count or a list of counts: {text!r}") from None
    if any(v < 1 for v in values):
        raise argparse.ArgumentTypeError("every repeat count must be at least 1")
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.attachments",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--sizes", type=_sizes, default=[2**20, 100 * 2**20], help="file sizes (1MiB,100MiB)"
    )
    parser.add_argument(
        "--repeat",
        type=_repeats,
        help="runs per size: one count for every size, or one per size "
        "(default: 20 below 10 MiB, else 3)",
    )
    parser.add_argument(
        "--database-url",
        help="a PostgreSQL server to run on, in a fresh database created and dropped there "
        "(default: a fresh SQLite file)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        help="where the hub's database, blobs and log, the source files and the copies go, "
        "kept afterwards (default: a temporary directory, removed)",
    )
    parser.add_argument(
        "--hub-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="another setting for the hub (repeatable)",
    )
    parser.add_argument("--json", type=Path, help="also write the result here")
    parser.add_argument("--quiet", action="store_true", help="no line per run on stderr")
    args = parser.parse_args(argv)
    repeats = args.repeat or [default_repeat(size) for size in args.sizes]
    if len(repeats) == 1:
        repeats = repeats * len(args.sizes)
    if len(repeats) != len(args.sizes):
        parser.error(f"--repeat gives {len(repeats)} counts for {len(args.sizes)} sizes")
    options = Options(
        sizes=args.sizes,
        repeats=repeats,
        database_url=args.database_url,
        workdir=args.workdir,
        hub_env=args.hub_env,
        progress=(lambda line: None) if args.quiet else _to_stderr,
    )
    result = run(options)
    report.print_table(result)
    if args.json:
        report.write_json(result, args.json)
    return 0


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
