"""Progress of long work, in one place: a rich progress bar on a terminal and, when the output is piped
or redirected (not a terminal, e.g. ``dermx demo | tee log``), plain lines instead: one per task every
:data:`INTERVAL` seconds and one when it completes, so a log shows the work moving rather than nothing
for minutes.

:func:`progress` gives either display behind the part of :class:`rich.progress.Progress` dermx uses
(``add_task``, ``update``, ``advance``, ``track``, a context manager); :func:`track` wraps one iterable.
Training reports through the same lines (:class:`dermx.train.fitting.PlainProgressBar`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sized
from dataclasses import dataclass
from typing import Any, TypeVar

from rich.console import Console
from rich.progress import Progress, ProgressColumn, TaskID

#: Seconds between two plain lines of one task.
INTERVAL = 10.0
T = TypeVar("T")


@dataclass
class _Task:
    description: str
    total: float | None
    completed: float
    started: float
    reported: float
    finished: bool = False


class PlainProgress:
    """Progress as plain lines, ``description: 12/40 (30 %), 25 s``: at most one per task every ``interval``
    seconds, and one when a task completes. ``clock`` is the time source (seconds)."""

    def __init__(self, console: Console | None = None, *, interval: float = INTERVAL, disable: bool = False,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.console = console or Console()
        self.interval, self.disable, self.clock = interval, disable, clock
        self._tasks: list[_Task] = []

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *_: object) -> None:
        return None

    def add_task(self, description: str, total: float | None = None, **_: Any) -> TaskID:
        now = self.clock()
        self._tasks.append(_Task(description, total, 0.0, now, now))
        return TaskID(len(self._tasks) - 1)

    def update(self, task_id: TaskID, *, completed: float | None = None, advance: float | None = None,
               total: float | None = None, description: str | None = None, **_: Any) -> None:
        task = self._tasks[task_id]
        task.total = task.total if total is None else total
        task.description = task.description if description is None else description
        task.completed = task.completed if completed is None else completed
        task.completed += advance or 0.0
        self._report(task)

    def advance(self, task_id: TaskID, advance: float = 1.0) -> None:
        self.update(task_id, advance=advance)

    def track(self, sequence: Iterable[T], total: float | None = None, description: str = "working",
              **_: Any) -> Iterator[T]:
        if total is None and isinstance(sequence, Sized):
            total = len(sequence)
        task = self.add_task(description, total)
        for item in sequence:
            yield item
            self.advance(task)

    def _report(self, task: _Task) -> None:
        now = self.clock()
        done = task.total is not None and task.completed >= task.total
        if (done and not task.finished) or (not done and now - task.reported >= self.interval):
            task.reported, task.finished = now, done
            if not self.disable:
                self.console.print(_line(task, now), markup=False, highlight=False, soft_wrap=True)


def _line(task: _Task, now: float) -> str:
    count = f"{task.completed:g}" + (f"/{task.total:g}" if task.total else "")
    share = f" ({100 * task.completed / task.total:.0f} %)" if task.total else ""
    return f"{task.description}: {count}{share}, {now - task.started:.0f} s"


def progress(console: Console | None = None, *columns: str | ProgressColumn, transient: bool = False,
             disable: bool = False) -> Progress | PlainProgress:
    """A rich progress bar (``columns``: rich's, default its own) when ``console`` (default: standard
    output) is a terminal, else :class:`PlainProgress` on it."""
    console = console or Console()
    if console.is_terminal:
        return Progress(*columns, console=console, transient=transient, disable=disable)
    return PlainProgress(console, disable=disable)


def track(sequence: Iterable[T], description: str, total: float | None = None, console: Console | None = None,
          disable: bool = False) -> Iterator[T]:
    """Iterate ``sequence`` showing its :func:`progress`."""
    with progress(console, disable=disable) as bar:
        yield from bar.track(sequence, total=total, description=description)
