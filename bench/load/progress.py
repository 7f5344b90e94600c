"""The live display while a run goes: sockets open, messages sent, copies delivered, errors,
and the server's CPU and memory — a rich progress display, refreshed by its own thread."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)


class RunDisplay:
    """One bar per phase counter and a status line; a no-op when `enabled` is false (CI logs)."""

    def __init__(self, label: str, *, enabled: bool, console: Console | None = None) -> None:
        self.enabled = enabled
        self._progress = Progress(
            TextColumn("[bold]{task.description:<22}"),
            BarColumn(bar_width=36),
            MofNCompleteColumn(),
            TextColumn("{task.fields[note]}"),
            TimeElapsedColumn(),
            console=console,
            refresh_per_second=4,
            disable=not enabled,
        )
        self._label = label
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> RunDisplay:
        self._progress.start()
        self._status = self._progress.add_task(f"{self._label}: starting", total=None, note="")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def phase(self, text: str) -> None:
        self._progress.update(self._status, description=f"{self._label}: {text}")

    def bar(self, name: str, total: float) -> None:
        if name not in self._tasks:
            self._tasks[name] = self._progress.add_task(name, total=total, note="")
        else:
            self._progress.update(self._tasks[name], total=total)

    def update(self, name: str, completed: float, note: str = "") -> None:
        task = self._tasks.get(name)
        if task is not None:
            self._progress.update(task, completed=completed, note=note)

    def status(self, note: str) -> None:
        self._progress.update(self._status, note=note)
