"""A progress bar while `explain` reads a big capture: bytes done of the file's two passes.

The analysis reports progress as data (`progress(done, total)`); this shows it
on a terminal (stderr, so `--json` on stdout stays clean), and only once a
file has taken longer than `delay` seconds: small files print nothing. Off a
terminal it shows nothing at all.
"""
from __future__ import annotations

import time
from types import TracebackType
from typing import Callable

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

__all__ = ["ReadingProgress"]


class ReadingProgress:
    """`with ReadingProgress(console, name) as show: explain_file(path, progress=show)`. A total of 0 is not known
    (what comes through a pipe, as it is copied): the bar then counts the bytes done."""

    def __init__(self, console: Console, name: str, delay: float = 1.0,
                 clock: Callable[[], float] = time.monotonic, doing: str = "explaining") -> None:
        self.console = console
        self.name = name
        self.doing = doing
        self.delay = delay
        self.clock = clock
        self.started = 0.0
        self.bar: Progress | None = None
        self.task: TaskID | None = None

    def __enter__(self) -> Callable[[int, int], None]:
        self.started = self.clock()
        return self.update

    def update(self, done: int, total: int) -> None:
        """Take one report from the analysis: bytes done of bytes in all (both passes)."""
        if not self.console.is_terminal or total < 0:
            return
        if self.bar is None:
            if self.clock() - self.started < self.delay:
                return
            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                                TimeRemainingColumn(), console=self.console, transient=True)
            self.bar.start()
            self.task = self.bar.add_task(f"{self.doing} {self.name}", total=total or None)
        assert self.task is not None
        self.bar.update(self.task, completed=done, total=total or None)

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.bar is not None:
            self.bar.stop()
