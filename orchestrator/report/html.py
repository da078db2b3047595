"""The run as one self-contained web page: index.html with every scenario's ladder as inline SVG.

A CI artifact is downloaded as a zip, where Markdown (and Mermaid) does not
render; this page needs nothing but a browser: no script, no stylesheet, font
or image from elsewhere. The SVG is drawn here, in Python, from the same ladder
model as the Mermaid diagram and the terminal (ladder.py).
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from html import escape
from itertools import pairwise
from typing import Any

from ..verify import holds, mark, tally
from .ladder import Arrow, Ladder, Note, build_ladder
from .pages import checks_line, event_outcome, kernel_words, packet_rows

# geometry (pixels); labels are monospace, so their width is known from their length
CHAR_W = 7.3
FONT = 12
TIME_W = 70
HEAD_H = 44
TOP = 16
ARROW_H = 32
NOTE_H = 28
MIN_SPACING = 190

COLOURS = {
    "line": "#37474f", "rst": "#d32f2f", "life": "#90a4ae", "time": "#78909c",
    "gap": ("#eceff1", "#b0bec5"), "error": ("#fff3cd", "#e0a800"), "timeout": ("#fff3cd", "#e0a800"),
    "info": ("#e3f2fd", "#64b5f6"), "rst_note": ("#ffebee", "#d32f2f"), "omitted": ("#f5f5f5", "#bdbdbd"),
}


def _w(text: str) -> float:
    return len(text) * CHAR_W


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9-]", "-", text.lower())


def svg_ladder(ladder: Ladder) -> str:
    """The ladder as an inline <svg> element: one <line> per drawn arrow, notes as boxes, resets in red."""
    uid = _slug(f"{ladder.scenario}-{ladder.point}")
    n = len(ladder.participants)
    spacing, half = ladder.geometry(_w, MIN_SPACING, 18, notes_widen=False)
    xs = [TIME_W + half + i * spacing for i in range(n)]
    width = int(xs[-1] + half + 10) if n else 400
    widest = max((_w(r.text) + 40 for r in ladder.notes), default=0.0)
    width = max(width, int(TIME_W + widest))        # a note overhangs its span, never the picture
    body: list[str] = []
    y = TOP + HEAD_H + 18
    for row in ladder.rows:
        lo, hi = ladder.span(row)
        if isinstance(row, Arrow):
            y += ARROW_H
            x1, x2 = xs[ladder.column(row.src)], xs[ladder.column(row.dst)]
            marks = [xs[ladder.column(pt)] for pt in row.seen if pt in ladder.names]
            body.append(_arrow(row, x1, x2, y, uid, marks))
        else:
            y += NOTE_H
            body.append(_note(row, xs[lo], xs[hi], y, width))
    height = int(y + 26)
    head: list[str] = []
    for p, x in zip(ladder.participants, xs, strict=False):
        w = max(_w(p.name), _w(p.address or "")) + 24
        head.append(f'<g class="participant" data-name="{escape(p.name)}"'
                    + (' data-capture="yes"' if p.name in ladder.points else "") + ">"
                    + f'<rect x="{x - w / 2:.1f}" y="{TOP}" width="{w:.1f}" height="{HEAD_H}" rx="5" '
                    f'fill="#eceff1" stroke="{COLOURS["line"]}"/>'
                    f'<text x="{x:.1f}" y="{TOP + 18}" text-anchor="middle" font-weight="bold">{escape(p.name)}</text>'
                    + (f'<text x="{x:.1f}" y="{TOP + 35}" text-anchor="middle" fill="#546e7a">{escape(p.address)}</text>'
                       if p.address else "") + "</g>")
        head.append(f'<line class="life" x1="{x:.1f}" y1="{TOP + HEAD_H}" x2="{x:.1f}" y2="{height - 6}" '
                    f'stroke="{COLOURS["life"]}" stroke-dasharray="4 4"/>')
    head.append(f'<text x="8" y="{TOP + HEAD_H + 14}" fill="{COLOURS["time"]}" font-size="11">t (s)</text>')
    defs = (f'<defs><marker id="{uid}-head" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" '
            f'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="{COLOURS["line"]}"/></marker></defs>')
    label = (f"Ladder of {ladder.scenario} across {ladder.where}: {len(ladder.arrows)} arrows for "
             f"{ladder.drawn} of {ladder.total} segments")
    return (f'<svg class="ladder" data-scenario="{escape(ladder.scenario)}" data-point="{escape(ladder.where)}" '
            f'data-lifelines="{len(ladder.participants)}" '
            f'data-arrows="{len(ladder.arrows)}" data-packets="{ladder.total}" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(label)}" '
            f'font-family="ui-monospace, SFMono-Regular, Menlo, Consolas, monospace" font-size="{FONT}">'
            f"<title>{escape(label)}</title>{defs}" + "".join(head) + "".join(body) + "</svg>")


def _arrow(a: Arrow, x1: float, x2: float, y: float, uid: str, marks: Sequence[float] = ()) -> str:
    """One segment: a line from where it was first seen to where it was last seen, a dot on every capture point
    that saw it, a diamond where a segment starts partway (forged), a cross where one stops partway or is a reset."""
    colour = COLOURS["rst"] if a.rst else COLOURS["line"]
    direction = 1 if x2 >= x1 else -1
    crossed = a.rst or a.stopped
    end = x2 - direction * (0 if crossed else 1)
    classes = ("seg" + (" rst" if a.rst else "") + (" collapsed" if a.collapsed else "")
               + (" stopped" if a.stopped else "") + (" forged" if a.forged else ""))
    what = f"segment {a.first}" if a.first == a.last else f"segments {a.first}–{a.last}"
    seen = f"; seen at {', '.join(a.seen)}" if a.seen else ""
    tip = f"{a.t:.6f} s {a.src} → {a.dst} {a.label} ({what}{seen})"
    parts = [(f'<g class="{classes}" data-first="{a.first}" data-last="{a.last}" data-from="{escape(a.src)}" '
              f'data-to="{escape(a.dst)}" data-seen="{escape(",".join(a.seen))}"><title>{escape(tip)}</title>')]
    if a.rst:
        lo, hi = sorted((x1, x2))
        parts.append(f'<rect x="{lo - 12:.1f}" y="{y - 22}" width="{hi - lo + 24:.1f}" height="28" rx="4" '
                     f'fill="#ffcdd2" fill-opacity="0.45"/>')
    parts.append(f'<text x="6" y="{y + 4}" fill="{COLOURS["time"]}" font-size="11">{a.t:.6f}</text>')
    edges = sorted({x1, x2, *(x for x in marks if min(x1, x2) < x < max(x1, x2))}, key=lambda x: abs(x - x1))
    stretches = sorted(pairwise(edges), key=lambda e: -abs(e[1] - e[0]))      # widest first, then nearest the start
    centre = (stretches[0][0] + stretches[0][1]) / 2 if stretches else (x1 + x2) / 2
    parts.append(f'<text x="{centre:.1f}" y="{y - 7}" text-anchor="middle" fill="{colour}"'
                 + (' font-weight="bold"' if a.rst else "") + f">{escape(a.label)}</text>")
    dash = ' stroke-dasharray="7 4"' if a.collapsed else ""
    width = 2.6 if a.rst else 1.6
    head = "" if crossed else f' marker-end="url(#{uid}-head)"'
    parts.append(f'<line x1="{x1:.1f}" y1="{y}" x2="{end:.1f}" y2="{y}" stroke="{colour}" stroke-width="{width}"'
                 f"{dash}{head}/>")
    for x in marks:
        if crossed and abs(x - end) < 1:
            continue                    # the cross marks the last point
        parts.append(f'<circle class="mark" cx="{x:.1f}" cy="{y}" r="4" fill="#fff" stroke="{colour}" stroke-width="2"/>')
    if a.forged:
        parts.append(f'<path class="origin" d="M{x1:.1f},{y - 8} L{x1 + 8:.1f},{y} L{x1:.1f},{y + 8} L{x1 - 8:.1f},{y} z" '
                     f'fill="{colour}"/>')
    if crossed:
        stop = "#000" if a.stopped and not a.rst else colour
        parts.append(f'<path class="{"stop" if a.stopped else "cross"}" d="M{end - 7:.1f},{y - 7} L{end + 7:.1f},{y + 7} '
                     f'M{end - 7:.1f},{y + 7} L{end + 7:.1f},{y - 7}" stroke="{stop}" stroke-width="3"/>')
    parts.append("</g>")
    return "".join(parts)


def _note(note: Note, x_lo: float, x_hi: float, y: float, width: float) -> str:
    fill, stroke = COLOURS["rst_note" if note.kind == "rst" else note.kind]
    w = max(_w(note.text) + 16, x_hi - x_lo + 40 if x_hi > x_lo else 0)
    cx = min(max((x_lo + x_hi) / 2, TIME_W + w / 2), width - w / 2 - 4)      # overhangs its span, stays in the picture
    style = ' font-style="italic"' if note.kind in ("gap", "omitted") else ""
    weight = ' font-weight="bold"' if note.kind in ("rst", "error") else ""
    colour = COLOURS["rst"] if note.kind == "rst" else "#263238"
    return (f'<g class="note {note.kind}"><rect x="{cx - w / 2:.1f}" y="{y - 16}" width="{w:.1f}" height="22" rx="3" '
            f'fill="{fill}" stroke="{stroke}"/><text x="{cx:.1f}" y="{y - 1}" text-anchor="middle" fill="{colour}"'
            f"{style}{weight}>{escape(note.text)}</text></g>")


# --- the page -------------------------------------------------------------------------------------------------------

CSS = """
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#212121;background:#fafafa}
main{max-width:1200px;margin:0 auto;padding:16px 24px 60px}
h1{margin:8px 0 4px} h2{margin:40px 0 6px;padding-top:16px;border-top:2px solid #cfd8dc}
table{border-collapse:collapse;margin:8px 0 16px;font-size:13px;background:#fff}
th,td{border:1px solid #cfd8dc;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#eceff1} td.num{text-align:right;font-variant-numeric:tabular-nums}
code{font:12.5px ui-monospace,Menlo,Consolas,monospace;background:#eceff1;padding:0 3px;border-radius:3px}
.verdict{display:inline-block;padding:1px 10px;border-radius:10px;color:#fff;font-weight:600;font-size:13px}
.passed{background:#2e7d32}.failed{background:#c62828}.error{background:#6a1b9a}
.claim{border-left:4px solid #90a4ae;background:#fff;padding:6px 12px;margin:8px 0}
.no{color:#c62828;font-weight:600}
.diagram{overflow-x:auto;background:#fff;border:1px solid #cfd8dc;border-radius:6px;padding:6px;margin:8px 0}
tr.bad td{background:#ffebee} details{margin:6px 0} summary{cursor:pointer;font-weight:600}
.muted{color:#607d8b;font-size:13px}
"""


def _inline(text: Any) -> str:
    """Plain text with the Markdown the documents use (`code`, **bold**) as HTML."""
    s = escape(" ".join(str("" if text is None else text).split()))
    s = re.sub(r"`([^`]+)`", r"<code>\1</code>", s)
    return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", s)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], numeric: Sequence[int] = (),
           bad: Sequence[bool] | None = None) -> str:
    out = ["<table><tr>" + "".join(f"<th>{escape(h)}</th>" for h in header) + "</tr>"]
    for i, row in enumerate(rows):
        cls = ' class="bad"' if bad and bad[i] else ""
        out.append(f"<tr{cls}>" + "".join(
            f'<td{" class=num" if j in numeric else ""}>{_inline(v)}</td>' for j, v in enumerate(row)) + "</tr>")
    return "".join(out) + "</table>"


def scenario_section(doc: Mapping[str, Any]) -> str:
    sid = doc["scenario"]
    v = doc["verdict"]
    parts = [f'<section id="{escape(_slug(sid))}" class="scenario">',
             f'<h2>{escape(sid)}: {_inline(doc["title"])}</h2>',
             f'<p><span class="verdict {v}">{v}</span> {escape(checks_line(doc))}'
             + (f" · error: {_inline(doc['error'])}" if doc.get("error") else "")
             + f' · <a href="{escape(sid)}/README.md">page</a></p>',
             ]
    if doc.get("claim"):   # shown only when the scenario makes one
        parts += [f'<div class="claim"><b>The article says:</b> {_inline(doc["claim"])}</div>',
                  f'<p><b>Observed:</b> {_inline(doc.get("observed")) or "(not recorded)"} '
                  + ("" if doc.get("article_holds", True) else '<span class="no">The claim does not hold on Linux.</span>')
                  + "</p>"]
    elif doc.get("observed"):
        parts.append(f'<p><b>Observed:</b> {_inline(doc["observed"])}</p>')
    if doc.get("explanation"):
        parts.append(f'<details><summary>Why</summary><p>{_inline(doc["explanation"])}</p></details>')
    if doc.get("fix"):
        parts.append(f'<p><b>What fixes it:</b> {_inline(doc["fix"])}</p>')
    if doc.get("steps"):
        parts.append("<details><summary>What the scenario does</summary><ol>"
                     + "".join(f"<li>{_inline(s)}</li>" for s in doc["steps"]) + "</ol></details>")
    ladder = build_ladder(doc)
    if ladder.participants:
        pcaps = ", ".join(f'<a href="{escape(sid)}/{escape(pt)}.pcap">{escape(pt)}.pcap</a>' for pt in ladder.points)
        parts.append(f'<p class="muted">Ladder across every capture point (<b>{escape(ladder.where)}</b>; {pcaps}; '
                     f'all in one annotated <a href="{escape(sid)}/{escape(sid)}.pcapng">{escape(sid)}.pcapng</a>): '
                     f"{ladder.total} segments, time in seconds since the first. Each arrow runs from where the "
                     "segment was first seen to where it was last seen, with a dot on every capture point that saw "
                     "it; a cross at its end means it went no further (or is a reset), a diamond that it was made "
                     "there, not by the host whose address it carries.</p>")
        parts.append(f'<div class="diagram">{svg_ladder(ladder)}</div>')
    checks = doc.get("checks", [])
    words = kernel_words(doc)
    if words:
        parts.append("<details><summary>The kernel's reasons (tcp:tcp_send_reset)</summary><ul>"
                     + "".join(f"<li>{escape(w)}</li>" for w in words) + "</ul></details>")
    parts.append("<h3>Checks</h3>" + _table(
        ["", "check", "expected", "observed"],
        [[mark(c, "✓", "✗"), f"{c['kind']} @ {c['subject']}", c["expected"], c["observed"]] for c in checks],
        bad=[not holds(c) for c in checks]))
    for point, packets in doc.get("packets", {}).items():
        rows = [[*r[:4], str(r[4]).strip("`"), *r[5:]] for r in packet_rows(packets)]
        parts.append(f'<details><summary>Packets at {escape(point)} '
                     f"({len(packets)})</summary>"
                     + _table(["#", "t (s)", "from", "to", "flags", "seq", "ack", "len", "dir"], rows,
                              numeric=(0, 1, 5, 6, 7), bad=[("R" in p["flags"]) for p in packets]) + "</details>")
    events = doc.get("events", [])
    if events:
        parts.append(f"<details><summary>What the applications saw ({len(events)} calls)</summary>" + _table(
            ["t (s)", "host", "call", "socket", "outcome"],
            [[f"{e.get('t', 0):.3f}".replace("-0.000", "0.000"), e.get("host"), e.get("call"), e.get("sock") or "",
              event_outcome(e)]
             for e in events], numeric=(0,), bad=[bool(e.get("errno")) for e in events]) + "</details>")
    counters = [[h, k, f"{val:+d}"] for h, d in doc.get("counters", {}).items() for k, val in sorted(d.items())]
    if counters:
        parts.append("<details><summary>Kernel counters</summary>" + _table(["host", "counter", "change"], counters,
                                                                               numeric=(2,)) + "</details>")
    caps = doc.get("captures", {})
    if caps:
        parts.append('<p class="muted">Captures: ' + ", ".join(
            f'<a href="{escape(sid)}/{escape(c["file"])}">{escape(c["file"])}</a> ({c.get("captured")} packets)'
            for c in caps.values()) + "</p>")
    parts.append("</section>")
    return "\n".join(parts)


def run_page(summary: Mapping[str, Any], docs: Sequence[Mapping[str, Any]]) -> str:
    """index.html: the run's table of scenarios, then each scenario with its ladder, checks and packets."""
    rows = "".join(
        f'<tr><td><a href="#{escape(_slug(d["scenario"]))}">{escape(d["scenario"])}</a></td>'
        f'<td><span class="verdict {d["verdict"]}">{d["verdict"]}</span></td>'
        f'<td class="num">{escape(tally(d.get("checks", [])))}</td>'
        f'<td>{"yes" if d.get("article_holds", True) else "<span class=no>no</span>"}</td>'
        f"<td>{_inline(d['title'])}</td></tr>" for d in docs)
    title = f"RST Lab run {summary.get('run_id', '')}"
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{escape(title)}</title><style>{CSS}</style></head><body><main>"
            f"<h1>RST Lab</h1><p>Run <code>{escape(str(summary.get('run_id', '')))}</code> on kernel "
            f"{escape(str(summary.get('kernel') or '?'))}: <b>{summary['passed']} of {summary['total']}</b> scenarios "
            "passed. Every ladder below is drawn from a real capture; a reset is red with a cross.</p>"
            "<table><tr><th>scenario</th><th>verdict</th><th>checks</th><th>article holds</th><th>what it shows</th></tr>"
            f"{rows}</table>\n" + "\n".join(scenario_section(d) for d in docs) + "\n</main></body></html>\n")
