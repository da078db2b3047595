"""Live progress in a terminal (rich): what each scenario is doing now, and how much is left.

The runner emits `Progress` events; `LiveRun` keeps the state they describe
and renders it on every refresh: one row per running scenario with its phase
(creating, capturing, the current step, checking) and its elapsed time
against its expected time, and an overall bar, N of M with the time elapsed.
Finished scenarios are printed above the display with their verdict.
`LiveBuild` shows an image build: the debootstrap stages or each Dockerfile step.
Used only on a terminal; off one the command layer prints plain lines.
"""
from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from ..model import Scenario
    from ..runner import Progress as RunProgress

PHASE_WORDS = {"waiting": "waiting", "creating": "creating hosts", "capturing": "hosts up, capturing",
               "checking": "stopping captures, checking"}


@dataclass
class _Running:
    scenario: Scenario
    started: float
    phase: str = "creating"
    detail: str = ""


def step_words(markdown: str) -> str:
    """A step's page text (Markdown) as plain words for a terminal row."""
    return re.sub(r"\*\*|`", "", markdown)


class LiveRun:
    """The live display of a run of `scenarios`; `update` takes the runner's events from any thread."""

    def __init__(self, console: Console, scenarios: Sequence[Scenario], expected: Mapping[str, float],
                 on_done: Callable[[RunProgress], None], clock: Callable[[], float] = time.monotonic) -> None:
        self.console = console
        self.expected = expected
        self.on_done = on_done
        self._id_width = max((len(s.id) for s in scenarios), default=8)
        self.clock = clock
        self._lock = threading.Lock()
        self._running: dict[str, _Running] = {}
        self._overall = Progress(TextColumn("[bold]scenarios"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("elapsed"), TimeElapsedColumn(), console=console, get_time=clock)
        self._task = self._overall.add_task("run", total=len(scenarios))
        self._live = Live(console=console, get_renderable=self._render, refresh_per_second=4, transient=True)

    def __enter__(self) -> LiveRun:
        self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.stop()   # on Ctrl-C too: the display goes and the cursor comes back

    def update(self, event: RunProgress) -> None:
        from .document import describe_step

        with self._lock:
            if event.phase == "done":
                self._running.pop(event.scenario.id, None)
                self._overall.advance(self._task)
            elif event.phase != "waiting":
                row = self._running.setdefault(event.scenario.id, _Running(event.scenario, self.clock()))
                row.phase = event.phase
                row.detail = (f"step {event.index + 1}/{len(event.scenario.steps)}: "
                              f"{step_words(describe_step(event.step))}" if event.step is not None else "")
        if event.phase == "done":
            self.on_done(event)   # printed above the display

    def _render(self) -> RenderableType:
        with self._lock:
            rows = sorted(self._running.values(), key=lambda r: r.started)
            now = self.clock()
            table = Table.grid(padding=(0, 2), expand=True)
            table.add_column(no_wrap=True, style="bold", min_width=self._id_width)
            table.add_column(no_wrap=True, justify="right", min_width=15)
            table.add_column(no_wrap=True, overflow="ellipsis", ratio=1)
            for r in rows:
                expected = self.expected.get(r.scenario.id)
                elapsed = now - r.started
                timing = f"{elapsed:4.1f} s" + (f" / ~{expected:.0f} s" if expected else "")
                style = "yellow" if expected and elapsed > 1.5 * expected + 2 else ""
                table.add_row(r.scenario.id, Text(timing, style=style),
                              r.detail or PHASE_WORDS.get(r.phase, r.phase))
            if not rows and self._overall.tasks[0].finished:   # the last scenario is done; teardown goes on
                table.add_row("", "", Text("removing what the run made", style="dim"))
            return Group(table, self._overall)


STAGES = ("building ", "bootstrapping ", "importing ", "cannot pull", "installing ", "compiling ")  # kept on screen


class LiveBuild:
    """An image build on a terminal: a bar over the Dockerfile's steps, or the debootstrap stage now."""

    def __init__(self, console: Console) -> None:
        self._progress = Progress(TextColumn("[dim]image[/dim] {task.description}"), BarColumn(),
                                  MofNCompleteColumn(), TimeElapsedColumn(),
                                  TextColumn("{task.fields[line]}", style="dim"), console=console, transient=True)
        self._task = self._progress.add_task("", total=None, line="")
        self.console = console

    def __enter__(self) -> LiveBuild:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def update(self, message: str) -> None:
        """One line of the build: `Step 3/9 : RUN …` moves the bar; other lines show as they come."""
        step = re.match(r"Step (\d+)/(\d+) : (.*)", message)
        if step:
            self._progress.update(self._task, completed=int(step.group(1)) - 1, total=int(step.group(2)),
                                  line=step.group(3)[:60])
        elif message.startswith(STAGES):
            self._progress.update(self._task, description=message.split(":")[0][:70], completed=0, total=None,
                                  line="")
            self.console.print(f"[dim]image[/dim] {message}", highlight=False, soft_wrap=True)
        else:
            self._progress.update(self._task, line=message[:60])
