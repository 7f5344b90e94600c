"""The machine under the bench: open-files limits, and CPU and memory of processes from /proc.

Sampling /proc rather than asking the server keeps the measurement outside the thing measured,
and works the same for the hub, the peer and any process given by pid. `ServerSampler` follows
the server's processes (every hub node, or the peer) over time, each and summed; `CpuGroup`
counts the CPU time (utime + stime) a set of processes spent between two moments, including
processes found while it runs (PostgreSQL backends, by their process titles).
"""

from __future__ import annotations

import os
import platform
import resource
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

PAGE_TICKS = os.sysconf("SC_CLK_TCK")
SOCKET_OVERHEAD_FDS = 200  # a process's own files, database connections, pipes, listeners


class LimitTooLow(Exception):
    pass


def raise_open_files_limit() -> int:
    """Raise this process's soft open-files limit to its hard limit (children inherit it);
    returns the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1_048_576
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def require_open_files(sockets_per_process: int, who: str) -> None:
    """Refuse to start a run that would hit the open-files limit midway, saying what to change."""
    limit = raise_open_files_limit()
    needed = sockets_per_process + SOCKET_OVERHEAD_FDS
    if needed > limit:
        raise LimitTooLow(
            f"{who} needs about {needed} open files but the limit is {limit} (hard limit, per "
            "process). Raise the hard limit for the shell that runs the bench — "
            "`ulimit -Hn 65536` as root, `nofile` in /etc/security/limits.conf, LimitNOFILE= "
            "for a systemd unit, or `--ulimit nofile=65536:65536` for a container — "
            + ("or spread the swarm with --swarm-processes." if who == "the swarm" else "")
        )


@dataclass
class ProcessSample:
    at: float  # time.monotonic()
    cpu_percent: float  # of one core, since the previous sample
    rss_bytes: int
    fds: int


@dataclass
class ProcessSampler:
    """CPU% and RSS of one process over time, read from /proc/<pid>/stat and status."""

    pid: int
    samples: list[ProcessSample] = field(default_factory=list)
    _last: tuple[float, int] | None = None

    def sample(self) -> ProcessSample | None:
        try:
            ticks = _cpu_ticks(self.pid)
            rss = _rss_bytes(self.pid)
            fds = len(os.listdir(f"/proc/{self.pid}/fd"))
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            return None
        now = time.monotonic()
        cpu = 0.0
        if self._last is not None:
            elapsed = now - self._last[0]
            if elapsed > 0:
                cpu = 100.0 * (ticks - self._last[1]) / PAGE_TICKS / elapsed
        self._last = (now, ticks)
        sample = ProcessSample(now, cpu, rss, fds)
        self.samples.append(sample)
        return sample

    def rss_now(self) -> int:
        try:
            return _rss_bytes(self.pid)
        except (FileNotFoundError, ProcessLookupError):
            return 0


@dataclass
class ServerSampler:
    """The server's processes — every hub node, or the peer — each sampled as `ProcessSampler`
    does, and their sum (CPU % of one core, RSS, open files) as the server's series."""

    nodes: list[ProcessSampler]
    samples: list[ProcessSample] = field(default_factory=list)

    @classmethod
    def of(cls, pids: Iterable[int]) -> ServerSampler:
        return cls([ProcessSampler(pid) for pid in pids])

    def sample(self) -> ProcessSample | None:
        taken = [node.sample() for node in self.nodes]
        alive = [t for t in taken if t is not None]
        if not alive:
            return None
        total = ProcessSample(
            at=max(t.at for t in alive),
            cpu_percent=sum(t.cpu_percent for t in alive),
            rss_bytes=sum(t.rss_bytes for t in alive),
            fds=sum(t.fds for t in alive),
        )
        self.samples.append(total)
        return total

    def rss_now(self) -> int:
        return sum(node.rss_now() for node in self.nodes)


@dataclass(frozen=True)
class CpuMark:
    """What a `CpuGroup` knew at one moment: per pid, its CPU ticks when last seen (kept after
    it exits), when first seen, and when it started (ticks since boot)."""

    at_ticks: float  # since boot, as /proc/uptime counts
    last: dict[int, int]
    first: dict[int, int]
    born: dict[int, int]


@dataclass
class CpuGroup:
    """The CPU time of a set of processes, which may change while it runs: `pids` is asked at
    every `sample` (the run's sampling loop calls it once a second), and a process that exits
    between two samples loses at most that second of CPU."""

    name: str
    pids: Callable[[], Iterable[int]]
    _last: dict[int, int] = field(default_factory=dict)
    _first: dict[int, int] = field(default_factory=dict)
    _born: dict[int, int] = field(default_factory=dict)

    def sample(self) -> None:
        for pid in self.pids():
            try:
                fields = _stat_fields(pid)
            except (FileNotFoundError, ProcessLookupError, PermissionError):
                continue
            ticks = int(fields[11]) + int(fields[12])
            self._born.setdefault(pid, int(fields[19]))
            self._first.setdefault(pid, ticks)
            self._last[pid] = ticks

    def mark(self) -> CpuMark:
        self.sample()
        return CpuMark(_uptime_ticks(), dict(self._last), dict(self._first), dict(self._born))


def cpu_ms_between(start: CpuMark, end: CpuMark, pids: Iterable[int] | None = None) -> float:
    """CPU milliseconds the group's processes (or those of them in `pids`) spent from `start` to
    `end`. A process first seen after `start` counts from zero if it started after `start`, else
    from its first sample (what it spent before that is unknown, so not counted)."""
    wanted = None if pids is None else set(pids)
    ticks = 0
    for pid, last in end.last.items():
        if wanted is not None and pid not in wanted:
            continue
        if pid in start.last:
            base = start.last[pid]
        elif end.born.get(pid, 0) >= start.at_ticks:
            base = 0
        else:
            base = end.first[pid]
        ticks += last - base
    return ticks * 1000.0 / PAGE_TICKS


def postgres_backends(database: str) -> list[int]:
    """Pids of the PostgreSQL server processes serving `database`, found by their process titles
    (`postgres: [cluster:] user database host(port) state`, as ps shows them). The server's
    shared processes (WAL writer, checkpointer) serve every database on it, so are not counted."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as handle:
                title = handle.read(512)
        except OSError:
            continue
        if not title.startswith(b"postgres:"):
            continue
        words = title.replace(b"\0", b" ").decode(errors="replace").split()
        if database in words[1:]:
            found.append(int(entry.name))
    return found


def _stat_fields(pid: int) -> list[str]:
    """Fields 3 onwards of /proc/<pid>/stat (the list's index is the field's number less 3)."""
    with open(f"/proc/{pid}/stat") as handle:
        text = handle.read()
    # The command name (field 2) may hold spaces; fields after its closing paren are fixed.
    return text[text.rindex(")") + 2 :].split()


def _cpu_ticks(pid: int) -> int:
    fields = _stat_fields(pid)
    return int(fields[11]) + int(fields[12])  # utime + stime


def _uptime_ticks() -> float:
    with open("/proc/uptime") as handle:
        return float(handle.read().split()[0]) * PAGE_TICKS


def _rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def machine() -> dict[str, object]:
    """What the figures were measured on, including how busy it was when the run started."""
    memory = 0
    try:
        with open("/proc/meminfo") as handle:
            memory = int(handle.readline().split()[1]) * 1024
    except OSError:
        pass
    model = ""
    try:
        with open("/proc/cpuinfo") as handle:
            model = next(
                (line.split(":", 1)[1].strip() for line in handle if "model name" in line), ""
            )
    except OSError:
        pass
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gib": round(memory / 2**30, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "load_average_at_start": os.getloadavg(),
        "open_files_limit": resource.getrlimit(resource.RLIMIT_NOFILE),
    }
