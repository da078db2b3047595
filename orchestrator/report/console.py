"""The terminal: progress while the lab runs and the tables at the end (rich).

rich prints plain, final output when stdout is not a terminal, so CI logs stay readable.
"""
from __future__ import annotations

import threading
from typing import Sequence

from rich.console import Console
from rich.table import Table

from ..model import Scenario
from ..runner import ScenarioResult
from .files import verdict

STYLE = {"passed": "green", "failed": "red", "error": "magenta"}


class ConsoleReport:
    """Progress lines and result tables for one command."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console()
        self._lock = threading.Lock()

    def build_progress(self, message: str) -> None:
        with self._lock:
            self.console.print(f"[dim]image[/dim] {message}", highlight=False, markup=True, soft_wrap=True)

    def scenario_progress(self, scenario: str, message: str) -> None:
        with self._lock:
            self.console.print(f"[bold]{scenario}[/bold] {message}", highlight=False, soft_wrap=True)

    def note(self, message: str) -> None:
        with self._lock:
            self.console.print(message, highlight=False, soft_wrap=True)

    def scenario_done(self, result: ScenarioResult) -> None:
        v = verdict(result)
        with self._lock:
            self.console.print(f"[bold]{result.scenario.id}[/bold] [{STYLE[v]}]{v}[/{STYLE[v]}] "
                               f"in {result.duration:.1f} s" + (f": {result.error}" if result.error else ""),
                               highlight=False)
            for c in result.checks:
                if not c.passed:
                    self.console.print(f"  [red]✗[/red] {c.kind} @ {c.subject}: expected {c.expected}\n"
                                       f"      observed {c.observed}", highlight=False, markup=True)

    def summary(self, results: Sequence[ScenarioResult], out: str) -> None:
        table = Table(title="RST Lab", show_lines=False)
        table.add_column("scenario")
        table.add_column("verdict")
        table.add_column("checks", justify="right")
        table.add_column("time", justify="right")
        table.add_column("what it shows")
        for r in results:
            v = verdict(r)
            passed = sum(1 for c in r.checks if c.passed)
            table.add_row(r.scenario.id, f"[{STYLE[v]}]{v}[/{STYLE[v]}]", f"{passed}/{len(r.checks)}",
                          f"{r.duration:.1f} s", r.scenario.title)
        self.console.print(table)
        self.console.print(f"captures and pages in {out}", highlight=False)

    def scenario_list(self, scenarios: Sequence[Scenario]) -> None:
        table = Table(title="RST Lab scenarios")
        table.add_column("id")
        table.add_column("hosts")
        table.add_column("article holds on Linux")
        table.add_column("title")
        for s in scenarios:
            table.add_row(s.id, ", ".join(s.hosts), "yes" if s.article_holds else "[yellow]no[/yellow]", s.title)
        self.console.print(table)
