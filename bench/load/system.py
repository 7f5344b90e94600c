"""The machine under the bench: open-files limits, and CPU and memory of a process from /proc.

Sampling /proc rather than asking the server keeps the measurement outside the thing measured,
and works the same for the hub, the peer and any process given by pid.
"""

from __future__ import annotations

import os
import platform
import resource
import time
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


def _cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as handle:
        text = handle.read()
    # The command name (field 2) may hold spaces; fields after its closing paren are fixed.
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


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
