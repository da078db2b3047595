"""`explain --html OUT.html`: any capture as the lab's self-contained page (html.py's style and SVG ladder).

Per capture: the summary (counts, hosts, ports, time span, resets by cause,
what kind of capture), a table of incidents (the same verdict between the
same two hosts), then each incident with its most telling connection's ladder
(inline SVG, drawn by html.svg_ladder from ladder.py's model), evidence,
candidates, notes and packet table. No script, stylesheet, font or image from
elsewhere: it opens offline.
"""
from __future__ import annotations

from collections.abc import Sequence
from html import escape

from ..explain import AMBIGUOUS, CaptureExplanation, Explanation, Incident, incidents
from .connection_ladder import connection_ladder
from .explain_console import by_cause
from .html import CSS, _inline, _table, svg_ladder

__all__ = ["explain_page"]

DRAWN_INCIDENTS = 100     # incidents shown in full per capture; the rest are in the table only
PACKET_ROWS = 400         # rows of a connection's packet table at most
OTHERS_LISTED = 20        # the other connections of an incident named at most

EXTRA_CSS = """
.cause{font-weight:600;color:#2e7d32}.cause.ambiguous{color:#b26a00}.cause.unknown{color:#6a1b9a}
.cause.silent-drop{color:#00838f} .sentence{background:#fff;border-left:4px solid #90a4ae;padding:6px 12px}
.notes li{color:#8d6e00} section.capture{margin-top:24px} section.incident{margin-left:8px}
table.incidents td{white-space:nowrap} table.incidents td:last-child{white-space:normal}
"""


def _cause(cause: str, candidates: Sequence[str] = ()) -> str:
    text = cause + (": " + " or ".join(candidates) if candidates else "")
    return f'<span class="cause {escape(cause)}">{escape(text)}</span>'


def _anchor(index: int, number: int) -> str:
    return f"capture-{index}-incident-{number}"


def _ports(inc: Incident) -> str:
    lo, hi = inc.ports()
    return str(lo) if lo == hi else f"{lo}–{hi}"


def _times(inc: Incident, t0: float) -> str:
    first, last = inc.span()
    return f"{first - t0:.3f}" if first == last else f"{first - t0:.3f}–{last - t0:.3f}"


def _summary(r: CaptureExplanation) -> str:
    """The counts, the hosts and ports, the time span, the resets by cause and what kind of capture it is."""
    from ..explain.store import overview

    parts = [f"<p><b>{r.packets}</b> TCP packets, <b>{r.connections}</b> connections, "
             f"{r.counts_text(lambda n: f'<b>{n}</b>')}"
             + (f" ({r.other} frames that are not TCP ignored)" if r.other else "") + ".</p>"]
    if r.explanations:
        seen = overview(r.explanations)
        hosts, ports = sorted(seen.hosts), sorted(seen.server_ports)
        first, last = seen.first - r.t0, seen.last - r.t0
        parts.append(f"<p>Hosts: {escape(', '.join(hosts[:12]))}{' …' if len(hosts) > 12 else ''} "
                     f"({len(hosts)}); server ports {ports[0]}–{ports[-1]} ({len(ports)} distinct); "
                     f"from {first:.3f} s to {last:.3f} s after the first packet, of {r.end - r.t0:.3f} s "
                     "captured.</p>")
        parts.append(_table(["cause", "connections"], [[c, n] for c, n in by_cause([r])], numeric=(1,)))
    notes = list(r.notes) + (["the file is truncated: explained up to the cut"] if r.truncated else [])
    if notes:
        parts.append('<ul class="notes">' + "".join(f"<li>{escape(n)}</li>" for n in notes) + "</ul>")
    return "\n".join(parts)


def _incident_table(groups: Sequence[Incident], index: int, t0: float) -> str:
    rows = "".join(
        f'<tr><td class="num"><a href="#{_anchor(index, k + 1)}">{k + 1}</a></td><td class="num">{inc.count}</td>'
        f"<td>{escape(inc.client)} &gt; {escape(inc.server)}</td><td>{_cause(inc.cause, inc.candidates)}</td>"
        f"<td>{_ports(inc)}</td><td class=num>{_times(inc, t0)}</td><td>{escape(inc.meaning())}</td></tr>"
        for k, inc in enumerate(groups))
    return ("<table class=incidents><tr><th>#</th><th>connections</th><th>hosts</th><th>cause</th>"
            f"<th>server ports</th><th>time (s)</th><th>what the group means</th></tr>{rows}</table>")


def _packet_table(e: Explanation, t0: float) -> str:
    from ..explain import endpoint

    rows = [[n + 1, f"{p.time - t0:.6f}", endpoint(p.src, p.sport), endpoint(p.dst, p.dport), p.flags,
             p.rel_seq if p.rel_seq is not None else p.seq,
             "" if not p.has_ack else (p.rel_ack if p.rel_ack is not None else p.ack), p.length,
             "" if p.ttl is None else p.ttl, "" if p.ip_id is None else p.ip_id, p.frame]
            for n, p in enumerate(e.segments[:PACKET_ROWS])]
    more = len(e.segments) - PACKET_ROWS
    gone = sum(n for n, _, _ in e.elided)      # a long connection's middle, let go while it was read
    return (_table(["#", "t (s)", "from", "to", "flags", "seq", "ack", "len", "TTL", "IP ID", "frame"], rows,
                   numeric=(0, 1, 5, 6, 7, 8, 9, 10), bad=["R" in p.flags for p in e.segments[:PACKET_ROWS]])
            + (f'<p class="muted">… {more} more packets (explain --conn {escape(e.endpoints[0])} '
               "prints the connection)</p>" if more > 0 else "")
            + (f'<p class="muted">{gone:,} packets of this long connection\'s middle were not kept (counted and '
               "summed as they were read: its first and last packets, and those right after each RST, are)</p>" if gone else ""))


def _incident(inc: Incident, index: int, number: int, t0: float) -> str:
    e = inc.example
    ladder = connection_ladder(e, t0, _anchor(index, number))
    meaning = inc.meaning()
    parts = [f'<section class="incident" id="{_anchor(index, number)}">',
             f"<h3>{number}. {_cause(inc.cause, inc.candidates)} {escape(inc.client)} &gt; {escape(inc.server)}</h3>",
             f"<p>{inc.count} connection{'s' if inc.count != 1 else ''}, server port{'s' if '–' in _ports(inc) else ''} "
             f"{_ports(inc)}, at {_times(inc, t0)} s" + (f": <b>{escape(meaning)}</b>" if meaning else "") + ". "
             + ("The most telling one" if inc.count > 1 else "The connection")
             + f": <code>{escape(e.endpoints[0])} &gt; {escape(e.endpoints[1])}</code>"
             + (f", RST from <code>{escape(e.rst_from)}</code> ({escape(e.rst_side or 'side unknown')}) at "
                f"{e.rst_time - t0:.6f} s" if e.rst_from and e.rst_time is not None else "")
             + (f", Zeek <code>{escape(e.conn_state)}</code> <code>{escape(e.history)}</code>" if e.conn_state else "")
             + ".</p>",
             f'<p class="sentence">{_inline(e.sentence)}</p>'
             + (f"<p><b>Path:</b> {_inline(e.path.verdict)}</p>" if e.path is not None else ""),
             f'<p class="muted">Ladder: {ladder.total} segment{"s" if ladder.total != 1 else ""}'
             + (f", {ladder.drawn} drawn" if ladder.drawn < ladder.total else "")
             + "; time in seconds since the capture's first packet; a reset is red with a cross.</p>",
             f'<div class="diagram">{svg_ladder(ladder)}</div>',
             "<h4>Evidence</h4>" + _table(["t (s)", "packet", "what it shows"],
                                          [[f"{ev.packet.time - t0:.6f}", f"`{ev.line}`", ev.why] for ev in e.evidence],
                                          numeric=(0,), bad=["R" in ev.packet.flags for ev in e.evidence])]
    if e.cause == AMBIGUOUS:
        parts.append("<h4>Candidates</h4>" + _table(["cause", "what fits it", "what tells it apart"],
                                                    [[c.cause, c.why, c.tell] for c in e.candidates]))
    if e.notes:
        parts.append('<ul class="notes">' + "".join(f"<li>{_inline(n)}</li>" for n in e.notes) + "</ul>")
    parts.append(f"<details{' open' if len(e.segments) <= 30 else ''}><summary>Packets of "
                 f"{escape(e.endpoints[0])} &gt; {escape(e.endpoints[1])} ({e.packets})</summary>"
                 + _packet_table(e, t0) + "</details>")
    others = [o for o in inc.connections[:OTHERS_LISTED + 1] if o is not e][:OTHERS_LISTED]
    n_others = inc.count - 1              # the example is one of the incident's connections
    if n_others:
        named = ", ".join(f"{o.endpoints[0]} > {o.endpoints[1]}" for o in others)
        parts.append(f'<p class="muted">The other {n_others if n_others > 1 else "connection"}: {escape(named)}'
                     + (" …" if n_others > OTHERS_LISTED else "") + "</p>")
    parts.append("</section>")
    return "\n".join(parts)


def capture_section(r: CaptureExplanation, index: int) -> str:
    groups = incidents(r.explanations)
    parts = [f'<section class="capture" id="capture-{index}"><h2>{escape(r.path)}</h2>', _summary(r)]
    if groups:
        parts.append(f"<h3>Incidents ({len(groups)})</h3>" + _incident_table(groups, index, r.t0))
    for k, inc in enumerate(groups[:DRAWN_INCIDENTS]):
        parts.append(_incident(inc, index, k + 1, r.t0))
    if len(groups) > DRAWN_INCIDENTS:
        parts.append(f'<p class="muted">{len(groups) - DRAWN_INCIDENTS} more incidents are in the table only.</p>')
    parts.append("</section>")
    return "\n".join(parts)


def explain_page(results: Sequence[CaptureExplanation], selection: str = "") -> str:
    """The page of `explain --html`: each capture's summary, its incidents and their ladders."""
    title = "RST Lab explain: " + ", ".join(r.path.rsplit("/", 1)[-1] for r in results)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{escape(title)}</title><style>{CSS}{EXTRA_CSS}</style></head><body><main>"
            "<h1>RST Lab: explain</h1><p>Which cause each reset (and each unanswered SYN) matches, grouped into "
            "incidents: the same verdict between the same two hosts. Each incident shows its most telling "
            "connection: its ladder, the packets that decided it and its packet table.</p>"
            + (f"<p><b>Selected by</b> <code>{escape(selection)}</code>.</p>" if selection else "")
            + "\n".join(capture_section(r, i) for i, r in enumerate(results)) + "\n</main></body></html>\n")
