"""The hub's memory from outside it: VmRSS and VmHWM from /proc/<pid>/status, and a sampler
that reads VmRSS every few milliseconds from a thread of its own while an exchange runs.

A thread, not a Trio task: the client's task is busy sending or receiving, and a task would be
sampled only when it yields. The sampler still needs the GIL, so it records how long its longest
gap between two samples was; a peak shorter than that gap can be missed.
"""

from __future__ import annotations

import statistics
import threading
import time
from dataclasses import dataclass, field

MIB = 1024 * 1024


def status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (the process's peak RSS since it started) in bytes."""
    found = {}
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                found[name] = int(value.split()[0]) * 1024
    return found


def idle_rss(pid: int, samples: int = 10, interval_s: float = 0.02) -> int:
    """The median VmRSS over a short quiet spell (`samples` reads `interval_s` apart)."""
    values = []
    for _ in range(samples):
        values.append(status(pid)["VmRSS"])
        time.sleep(interval_s)
    return int(statistics.median(values))


@dataclass
class RssSampler:
    """`with RssSampler(pid):` samples VmRSS every `interval_s` until the block ends."""

    pid: int
    interval_s: float = 0.01
    peak: int = 0
    samples: int = 0
    longest_gap_s: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> RssSampler:
        self._sample()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join()
        self._sample()

    def _run(self) -> None:
        last = time.perf_counter()
        while not self._stop.wait(self.interval_s):
            self._sample()
            now = time.perf_counter()
            self.longest_gap_s = max(self.longest_gap_s, now - last)
            last = now

    def _sample(self) -> None:
        try:
            rss = status(self.pid)["VmRSS"]
        except (FileNotFoundError, ProcessLookupError, KeyError):
            return  # the process is gone (or a zombie, with no VmRSS line)
        self.peak = max(self.peak, rss)
        self.samples += 1
