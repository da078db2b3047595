"""The terminal: progress while the lab runs and the tables at the end (rich).

rich prints plain, final output when stdout is not a terminal, so CI logs stay readable.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from itertools import pairwise
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..listing import HEADERS, Entry, rows
from ..result import ScenarioResult, holds, tally

if TYPE_CHECKING:   # imported where used, so `list` and a run load neither
    from ..explain import CaptureExplanation
    from ..explain.paths import Paths
    from ..model import Scenario
    from ..runner import Progress
    from .ladder import Ladder

STYLE = {"passed": "green", "failed": "red", "error": "magenta"}
PHASE_LINES = {"capturing": "hosts up, capturing", "checking": "captures stopped, checking"}


def steady_console() -> Console:
    """The terminal's console, whether it is a terminal read once: rich reads it again (the environment, an
    isatty() call) on every print otherwise, a tenth of the time of printing a big capture's every connection."""
    console = Console(force_terminal=Console().is_terminal)
    console.on_broken_pipe = _closed    # type: ignore[method-assign]   # not rich's SystemExit(1): cli.main says it
    return console


def _closed() -> None:
    """The reader of the output closed it (`… | head`): the command stops, as a write to a closed pipe does."""
    raise BrokenPipeError


class ConsoleReport:
    """Progress lines and result tables for one command."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or steady_console()
        self._lock = threading.Lock()

    @contextmanager
    def building(self) -> Iterator[Callable[[str], None]]:
        """Where image build messages go: a live bar on a terminal, plain lines elsewhere."""
        if not self.console.is_terminal:
            yield self.build_progress
            return
        from .live import LiveBuild

        with LiveBuild(self.console) as live:
            yield live.update

    @contextmanager
    def running(self, scenarios: Sequence[Scenario],
                expected: Mapping[str, float]) -> Iterator[Callable[[Progress], None]]:
        """Where the runner's events go: a live display on a terminal, plain lines elsewhere.

        Leaving it (Ctrl-C included) removes the display and gives the cursor back.
        """
        if not self.console.is_terminal:
            yield self.scenario_progress
            return
        from .live import LiveRun

        def done(event: Progress) -> None:
            if event.result is not None:
                self.scenario_done(event.result)

        with LiveRun(self.console, scenarios, expected, done) as live:
            yield live.update

    def build_progress(self, message: str) -> None:
        with self._lock:
            self.console.print(f"[dim]image[/dim] {message}", highlight=False, markup=True, soft_wrap=True)

    def scenario_progress(self, event: Progress) -> None:
        """A line when a scenario's hosts are up and when its checking begins; its verdict when done."""
        if event.result is not None:
            self.scenario_done(event.result)
            return
        message = PHASE_LINES.get(event.phase)
        if message:
            with self._lock:
                self.console.print(f"[bold]{event.scenario.id}[/bold] {message}", highlight=False, soft_wrap=True)

    def note(self, message: str) -> None:
        with self._lock:
            self.console.print(message, highlight=False, soft_wrap=True)

    def scenario_done(self, result: ScenarioResult) -> None:
        v = result.verdict
        with self._lock:
            self.console.print(f"[bold]{result.scenario.id}[/bold] [{STYLE[v]}]{v}[/{STYLE[v]}] "
                               f"in {result.duration:.1f} s" + (f": {result.error}" if result.error else ""),
                               highlight=False, soft_wrap=True)
            for c in result.checks:
                if not holds(c):
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
            v = r.verdict
            table.add_row(r.scenario.id, f"[{STYLE[v]}]{v}[/{STYLE[v]}]", tally(r.checks),
                          f"{r.duration:.1f} s", r.scenario.title)
        self.console.print(table)
        self.console.print(f"captures and pages in {out}", highlight=False)

    def scenario_list(self, entries: list[Entry]) -> None:
        table = Table(title="RST Lab scenarios")
        for header in HEADERS:
            table.add_column(header)
        for scenario, hosts, holds_on_linux, title in rows(entries):
            table.add_row(scenario, hosts, holds_on_linux if holds_on_linux == "yes" else "[yellow]no[/yellow]",
                          title)
        self.console.print(table)

    def ladder(self, doc: Mapping[str, Any], ladder: Ladder) -> None:
        """`show NAME`: a scenario's verdict and claim, then its ladder drawn in text (ladder.py's model)."""
        v = doc.get("verdict", "error")
        passed, _, made = tally(doc.get("checks", [])).partition("/")
        with self._lock:
            self.console.print(f"[bold]{doc['scenario']}[/bold]: {doc['title']}", highlight=False)
            self.console.print(f"[{STYLE.get(v, 'magenta')}]{v}[/]: {passed} of {made} checks "
                               f"held, run {doc.get('run_id', '?')} {doc.get('started', '')}", highlight=False)
            if doc.get("claim"):
                self.console.print(f"[dim]claim:[/dim] {' '.join(str(doc['claim']).split())}", highlight=False)
            if doc.get("claim") and not doc.get("article_holds", True):
                self.console.print("[yellow]the claim does not hold on Linux[/yellow]", highlight=False)
            self.console.print(f"[dim]ladder across {ladder.where}: {ladder.total} segments"
                               + (f", {ladder.drawn} drawn" if ladder.drawn < ladder.total else "") + "[/dim]",
                               highlight=False)
            for line in ladder_lines(ladder, self.console.width):
                self.console.print(line, no_wrap=True, overflow="ellipsis", crop=False)
            for c in doc.get("checks", []):
                if not holds(c):
                    self.console.print(f"  [red]✗[/red] {c['kind']} @ {c['subject']}: expected {c['expected']}\n"
                                       f"      observed {c['observed']}", highlight=False)

    def explanations(self, results: Sequence[CaptureExplanation], every: bool = False,
                     paths: Paths | None = None, selection: str = "") -> None:
        """`explain FILE…`: per file, the summary first (connections, resets by cause, what kind
        of capture, its incidents), then each incident (the same verdict between the same two
        hosts) with its most telling connection in full and its ladder; `every` or a `selection`
        prints every (chosen) connection instead (explain_console.py). With several files, `paths`
        first says which connections they share and where each RST entered the path."""
        from .explain_console import print_explanations

        with self._lock:
            if paths is not None:
                self._paths(paths, len(results))
            print_explanations(self.console, results, every, selection)

    def _paths(self, paths: Paths, files: int) -> None:
        nat = sum(1 for c in paths.connections if c.translated)
        resets = [r for c in paths.connections for r in c.resets]
        self.console.print(Text.assemble((f"{files} capture points", "bold"), f": {paths.matched} connection"
                                         f"{'s' if paths.matched != 1 else ''} with a RST found in more than one"
                                         + (f" ({nat} through NAT)" if nat else "")
                                         + f", {len(resets)} RST{'s' if len(resets) != 1 else ''} followed"))
        for c in paths.connections:
            for r in c.resets:
                style = "bold red" if r.forged else "green" if r.forged is False else "yellow"
                self.console.print(Text.assemble("  ", (" > ".join(c.points), "dim"), "  ", (r.verdict, style)))
        self.console.print()


NOTE_STYLE = {"gap": "dim italic", "error": "bold yellow", "timeout": "yellow", "info": "cyan",
              "rst": "bold red", "omitted": "dim italic"}
TIME_COLUMN = 11


def ladder_lines(ladder: Ladder, width: int = 100) -> list[Text]:
    """The ladder as lines of rich Text: lifelines, arrows with their labels, notes; resets in red with a cross."""
    from .ladder import Arrow

    if not ladder.participants:
        return [Text("(no packets at this capture point)", style="dim")]
    spacing, half = ladder.geometry(len, 20, 3)
    n = len(ladder.participants)
    room = width - TIME_COLUMN - 1
    if 2 * half + (n - 1) * spacing > room:       # too wide: narrower margins (notes there get cut), then columns
        least = max(max(len(p.name), len(p.address or "")) / 2 + 2 for p in ladder.participants)
        half = max(least, (room - (n - 1) * spacing) / 2)
        if n > 1:
            spacing = max(16.0, min(spacing, (room - 2 * half) / (n - 1)))
    xs = [TIME_COLUMN + int(half + i * spacing) for i in range(n)]
    total = xs[-1] + int(half) + 1

    def blank() -> list[str]:
        chars = [" "] * total
        for x in xs:
            chars[x] = "│"
        return chars

    def centred(chars: list[str], text: str, centre: int, lo: int = 0, hi: int | None = None) -> tuple[int, int]:
        hi = total if hi is None else hi
        if len(text) > hi - lo:
            text = text[: max(1, hi - lo - 1)] + "…"
        start = min(max(lo, centre - len(text) // 2), hi - len(text))
        chars[start:start + len(text)] = list(text)
        return start, start + len(text)

    lines: list[Text] = []
    names, addrs = [" "] * total, [" "] * total
    for p, x in zip(ladder.participants, xs, strict=True):
        centred(names, p.name, x)
        centred(addrs, p.address or "", x)
    lines.append(Text("".join(names), style="bold"))
    lines.append(Text("".join(addrs), style="dim"))
    for row in ladder.rows:
        chars = blank()
        lo, hi = ladder.span(row)
        spans: list[tuple[int, int, str]] = []
        if isinstance(row, Arrow):
            t = f"{row.t:.6f}".rjust(TIME_COLUMN - 2)
            chars[:len(t)] = list(t)
            spans.append((0, len(t), "dim"))
            a, b = xs[lo], xs[hi]
            rightwards = xs[ladder.column(row.dst)] > xs[ladder.column(row.src)]
            shaft = "┄" if row.collapsed else ("━" if row.rst else "─")
            for x in range(a + 1, b):
                chars[x] = shaft
            head = "✕" if row.rst or row.stopped else ("▶" if rightwards else "◀")
            chars[b - 1 if rightwards else a + 1] = head
            marks = sorted(xs[ladder.column(pt)] for pt in row.seen if pt in ladder.names and a < xs[ladder.column(pt)] < b)
            for x in marks:                     # a mark on every capture point in between that saw it
                chars[x] = "●"
            if row.forged:                      # made here, not by the host whose address it carries
                chars[xs[ladder.column(row.src)]] = "◆"
            edges = [a, *marks, b]              # the label goes in the widest stretch between marks
            left, right = max(pairwise(edges), key=lambda e: e[1] - e[0])
            label_start, label_end = centred(chars, f" {row.label} ", (left + right) // 2, left + 2, right - 1)
            style = "bold red" if row.rst else ("dim" if row.collapsed else "")
            spans.append((a + 1, b, style or "default"))
            spans.append((label_start, label_end, "bold red" if row.rst else "bold"))
        else:
            text = f"[ {row.text} ]"
            centre = (xs[lo] + xs[hi]) // 2
            start, end = centred(chars, text, centre, TIME_COLUMN, total)
            spans.append((start, end, NOTE_STYLE.get(row.kind, "")))
        line = Text("".join(chars).rstrip())
        for start, end, style in spans:
            line.stylize(style, start, min(end, len(line)))
        lines.append(line)
    return lines

