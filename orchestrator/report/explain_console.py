"""`explain` in the terminal: per capture the summary first, then its incidents, each with a ladder.

The default output fits a terminal on any capture: every incident has one line
in the list after the summary, then incidents are shown in full (their
connections, or the most telling one of a large group, and its ladder) until
LINE_BUDGET lines are used; the rest stay in the list. `--all` and a selection
(`--conn`, `--host`) print every chosen connection in full with its ladder.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import chain

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..explain import AMBIGUOUS, HALF_OPEN, SILENT_DROP, UNKNOWN, CaptureExplanation, Explanation, Incident, incidents
from ..explain.store import overview
from .connection_ladder import connection_ladder
from .console import ladder_lines

__all__ = ["FOLD_ABOVE", "LINE_BUDGET", "cause_style", "incident_line", "print_explanations"]

FOLD_ABOVE = 3        # an incident of more connections than this shows its most telling one only
LINE_BUDGET = 190     # lines per capture by default (the summary, the list, the incidents in full)
LIST_MAX = 25         # incidents listed one per line at most; the rest are counted
TERMINAL_ARROWS = 12  # arrows of a ladder drawn by default (resets always among them)


def cause_style(cause: str) -> str:
    return {AMBIGUOUS: "bold yellow", UNKNOWN: "bold magenta", SILENT_DROP: "bold cyan"}.get(cause, "bold green")


@dataclass
class Block:
    """Lines to print together, and how many terminal lines they take (counted only where a budget is kept:
    counting renders each wrapped text once more)."""

    console: Console
    items: list[tuple[Text, str]] = field(default_factory=list)     # (text, how: "wrap", "line" or "crop")
    lines: int = 0
    counted: bool = True

    def add(self, text: Text, how: str = "wrap") -> None:
        """`wrap` to the terminal's width; `line`: one line however long (a tcpdump line);
        `crop`: one line cut at the width (a ladder's row)."""
        self.items.append((text, how))
        if self.counted:
            self.lines += len(self.console.render_lines(text, pad=False)) if how == "wrap" else 1

    def extend(self, other: Block) -> None:
        self.items += other.items
        self.lines += other.lines

    def emit(self) -> None:
        """Print the block, written to the file at once (rich writes each print's output else)."""
        with self.console:
            for text, how in self.items:
                if how == "crop":
                    self.console.print(text, no_wrap=True, overflow="ellipsis", crop=False)
                else:
                    self.console.print(text, soft_wrap=how == "line")


def _ranges(inc: Incident, t0: float) -> str:
    lo, hi = inc.ports()
    first, last = inc.span()
    ports = f"port {lo}" if lo == hi else f"ports {lo}–{hi}"
    when = f"at {first - t0:.3f} s" if first == last else f"{first - t0:.3f}–{last - t0:.3f} s"
    return f"{ports}, {when}"


def incident_line(inc: Incident, t0: float, lead: str = "  ") -> Text:
    """`1986 connections 172.16.0.8 > 64.13.134.52 (ports 1–65389, 0.000–5.052 s): silent-drop: a port scan …`"""
    what = inc.cause + (": " + " or ".join(inc.candidates) if inc.candidates else "")
    meaning = inc.meaning()
    return Text.assemble(
        lead, (f"{inc.count} connection{'s' if inc.count != 1 else ''}", "bold"),
        f" {inc.client} > {inc.server} ({_ranges(inc, t0)}): ", (what, cause_style(inc.cause)),
        f": {meaning}" if meaning else "")


def title_line(e: Explanation, t0: float) -> Text:
    """`  A > B  cause  RST from A (client) at 0.027638  zeek RSTO ShR`"""
    style = cause_style(e.cause)
    title = Text.assemble(f"  {e.endpoints[0]} > {e.endpoints[1]}  ", (e.cause, style))
    if e.cause == AMBIGUOUS:
        title.append(": " + " or ".join(c.cause for c in e.candidates), style=style)
    if e.rst_from and e.rst_time is not None:
        side = f" ({e.rst_side})" if e.rst_side else ""
        title.append(f"  RST from {e.rst_from}{side} at {e.rst_time - t0:.6f}", style="dim")
    if e.conn_state:
        title.append(f"  zeek {e.conn_state} {e.history}", style="dim")
    return title


def explanation_block(console: Console, e: Explanation, t0: float, tells: bool = True, counted: bool = True) -> Block:
    """One connection in full: its verdict, sentence, evidence, candidates and notes (`tells`: with what
    tells each candidate apart; said once per incident)."""
    block = Block(console, counted=counted)
    block.add(title_line(e, t0))
    block.add(Text("    " + e.sentence))
    if e.path is not None:
        block.add(Text("    path: " + e.path.verdict, style="bold"))
    for ev in e.evidence:
        block.add(Text("      " + ev.line, style="cyan"), "line")
        block.add(Text("          " + ev.why, style="dim italic"))
    if e.cause == AMBIGUOUS:
        for c in e.candidates:
            block.add(Text.assemble("    ", (c.cause, "bold yellow"), f": {c.why}"))
            if tells:
                block.add(Text(f"      tells it apart: {c.tell}", style="dim"))
    for note in e.notes:
        block.add(Text(f"    note: {note}", style="dim"))
    return block


def ladder_block(console: Console, e: Explanation, t0: float, name: str, max_arrows: int,
                 whose: bool = False, counted: bool = True) -> Block:
    """The connection's ladder, as `show` draws the lab's, under one dim line saying what it is."""
    block = Block(console, counted=counted)
    ladder = connection_ladder(e, t0, name, max_arrows)
    of = f" of {e.endpoints[0]} > {e.endpoints[1]}" if whose else ""
    drawn = f", {ladder.drawn} drawn" if ladder.drawn < ladder.total else ""
    block.add(Text(f"    ladder{of}: {ladder.total} segment{'s' if ladder.total != 1 else ''}{drawn}", style="dim"))
    for line in ladder_lines(ladder, max(60, console.width - 4)):
        block.add(Text("    ") + line, "crop")
    return block


def _heading(inc: Incident, number: int, tail: str) -> Text:
    return Text.assemble(f"  {number}. ", (inc.cause, cause_style(inc.cause)), f" {inc.client} > {inc.server}",
                         f", {inc.count} connections" if inc.count > 1 else "", tail)


def compact_block(console: Console, inc: Incident, t0: float, name: str, number: int, ladder: bool) -> Block:
    """An incident in a few lines, when the budget has no room for it in full: its heading, each one's
    verdict line for a few connections (every reset stays visible), and its ladder if `ladder`."""
    block = Block(console)
    block.add(_heading(inc, number, ", in short (--conn ADDR:PORT prints one in full):"))
    for e in inc.connections[:FOLD_ABOVE]:
        block.add(title_line(e, t0))
    if ladder:
        block.extend(ladder_block(console, inc.example, t0, name, TERMINAL_ARROWS, whose=inc.count > 1))
    return block


def incident_block(console: Console, inc: Incident, t0: float, name: str, number: int = 0) -> Block:
    """An incident in full: each of a few connections, or the group's line and its most telling one; its ladder.
    `number`: its place in the list printed above (0: no list, the group's line is written out)."""
    block = Block(console)
    folded = inc.count > FOLD_ABOVE
    if number:
        block.add(_heading(inc, number, ": the most telling one (--all lists every one):" if folded else ":"))
    elif folded:
        block.add(incident_line(inc, t0).append("; the most telling one (--all lists every one):"))
    if not folded:
        for k, e in enumerate(inc.connections):
            block.extend(explanation_block(console, e, t0, tells=k == 0))
    else:
        block.extend(explanation_block(console, inc.example, t0))
    block.extend(ladder_block(console, inc.example, t0, name, TERMINAL_ARROWS, whose=inc.count > 1))
    return block


def summary_block(console: Console, r: CaptureExplanation) -> Block:
    """The capture's counts, its resets by cause and what kind of capture it is."""
    block = Block(console)
    head = Text.assemble((r.path, "bold"), f": {r.packets} TCP packets, {r.connections} "
                         f"connection{'s' if r.connections != 1 else ''}, {r.counts_text()}")
    if r.other:
        head.append(f" ({r.other} frames that are not TCP ignored)", style="dim")
    block.add(head)
    if r.explanations:
        block.add(Text(f"  {_span(r)}; by cause: " + ", ".join(
            f"{cause} {n}" for cause, n in by_cause([r]))))
    for note in r.notes:
        block.add(Text(f"  {note}", style="yellow"))
    if r.truncated:
        block.add(Text("  the file is truncated: explained up to the cut", style="yellow"))
    return block


def _span(r: CaptureExplanation) -> str:
    """`hosts A, B; server ports 1–65389 (1991); 0.000–5.052 s of 21.300 s captured`: the explained
    connections, from the first one's start to the last RST, and the capture's own length."""
    seen = overview(r.explanations)
    hosts, ports = sorted(seen.hosts), sorted(seen.server_ports)
    first, last = seen.first - r.t0, seen.last - r.t0
    named = ", ".join(hosts) if len(hosts) <= 4 else f"{len(hosts)} hosts"
    port_text = f"port {ports[0]}" if len(ports) == 1 else f"ports {ports[0]}–{ports[-1]} ({len(ports)})"
    return f"{named}; {port_text}; {first:.3f}–{last:.3f} s of {r.end - r.t0:.3f} s captured"


def by_cause(results: Sequence[CaptureExplanation]) -> list[tuple[str, int]]:
    counts: dict[str, int] = {}
    for r in results:
        for cause, n in overview(r.explanations).causes.items():
            counts[cause] = counts.get(cause, 0) + n
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def every_block(console: Console, r: CaptureExplanation, index: int) -> Iterator[Block]:
    """Each connection in full with its ladder (`--all`, a selection), made as it is printed: a big capture's
    blocks are never all held at once, nor their lines counted."""
    for k, e in enumerate(r.explanations):
        yield explanation_block(console, e, r.t0, counted=False)
        yield ladder_block(console, e, r.t0, f"capture-{index}-connection-{k}", 30, counted=False)


def capture_blocks(console: Console, r: CaptureExplanation, index: int) -> list[Block]:
    """What one capture prints by default: its summary, then its incidents within LINE_BUDGET."""
    summary = summary_block(console, r)
    groups = incidents(r.explanations)
    if len(groups) > 1:
        summary.add(Text(f"  {len(groups)} incidents (the same verdict between the same two hosts):"))
        for k, inc in enumerate(groups[:LIST_MAX]):
            summary.add(incident_line(inc, r.t0, f"  {k + 1}. "))
        if len(groups) > LIST_MAX:
            summary.add(Text(f"  … {len(groups) - LIST_MAX} more incidents", style="dim"))
    out = [summary]
    used = summary.lines
    for k, inc in enumerate(groups):
        name = f"capture-{index}-incident-{k}"
        if k and inc.cause == HALF_OPEN:       # nothing was reset: its connections' lines name the open ports
            block = compact_block(console, inc, r.t0, name, k + 1, False)
        else:
            block = incident_block(console, inc, r.t0, name, k + 1 if len(groups) > 1 else 0)
        for ladder in (True, False):          # no room in full: in short with its ladder, else without
            if k and used + block.lines > LINE_BUDGET - 2:
                block = compact_block(console, inc, r.t0, name, k + 1, ladder)
        if k and used + block.lines > LINE_BUDGET - 2:
            rest = len(groups) - k
            out.append(Block(console))
            out[-1].add(Text(f"  {rest} more incident{'s' if rest != 1 else ''} not shown in full (see the list "
                             "above): --all prints every connection, --conn ADDR:PORT or --host ADDR one",
                             style="yellow"))
            break
        out.append(block)
        used += block.lines
    return out


def print_explanations(console: Console, results: Sequence[CaptureExplanation], every: bool = False,
                       selection: str = "") -> None:
    """Every capture's blocks, then (several captures) the causes of them all."""
    if every or selection:      # rich reads the terminal's size (syscalls) on every print: read it once here
        console.size = console.size
    for index, r in enumerate(results):
        if every or selection:
            blocks: Iterable[Block] = chain([summary_block(console, r)], every_block(console, r, index))
        else:
            blocks = capture_blocks(console, r, index)
        for k, block in enumerate(blocks):
            if selection and not k:
                block.add(Text(f"  selected by {selection}: {len(r.explanations)} connection"
                               f"{'s' if len(r.explanations) != 1 else ''}", style="bold"))
            block.emit()
        console.print()
    if len(results) > 1 and any(r.explanations for r in results):
        table = Table(title="causes")
        table.add_column("cause")
        table.add_column("connections", justify="right")
        for cause, n in by_cause(results):
            table.add_row(Text(cause, style=cause_style(cause)), str(n))
        console.print(table)
