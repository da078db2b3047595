"""The run as one self-contained web page: index.html with every scenario's ladder as inline SVG.

A CI artifact is downloaded as a zip, where Markdown (and Mermaid) does not
render; this page needs nothing but a browser: no script, no stylesheet, font
or image from elsewhere. The SVG is drawn here, in Python, from the same ladder
model as the Mermaid diagram and the terminal (ladder.py).
"""
from __future__ import annotations

import re
from html import escape
from typing import Any, Mapping, Sequence

from ..verify import holds, mark, tally
from .ladder import Arrow, Ladder, Note, build_ladder
from .pages import checks_line, event_outcome, packet_rows

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
    spacing, half = ladder.geometry(_w, MIN_SPACING, 18)
    xs = [TIME_W + half + i * spacing for i in range(n)]
    width = int(xs[-1] + half + 10) if n else 400
    body: list[str] = []
    y = TOP + HEAD_H + 18
    for row in ladder.rows:
        lo, hi = ladder.span(row)
        if isinstance(row, Arrow):
            y += ARROW_H
            x1, x2 = xs[ladder.column(row.src)], xs[ladder.column(row.dst)]
            body.append(_arrow(row, x1, x2, y, uid))
        else:
            y += NOTE_H
            body.append(_note(row, xs[lo], xs[hi], y, half))
    height = int(y + 26)
    head: list[str] = []
    for p, x in zip(ladder.participants, xs):
        w = max(_w(p.name), _w(p.address or "")) + 24
        head.append(f'<g class="participant"><rect x="{x - w / 2:.1f}" y="{TOP}" width="{w:.1f}" height="{HEAD_H}" rx="5" '
                    f'fill="#eceff1" stroke="{COLOURS["line"]}"/>'
                    f'<text x="{x:.1f}" y="{TOP + 18}" text-anchor="middle" font-weight="bold">{escape(p.name)}</text>'
                    + (f'<text x="{x:.1f}" y="{TOP + 35}" text-anchor="middle" fill="#546e7a">{escape(p.address)}</text>'
                       if p.address else "") + "</g>")
        head.append(f'<line class="life" x1="{x:.1f}" y1="{TOP + HEAD_H}" x2="{x:.1f}" y2="{height - 6}" '
                    f'stroke="{COLOURS["life"]}" stroke-dasharray="4 4"/>')
    head.append(f'<text x="8" y="{TOP + HEAD_H + 14}" fill="{COLOURS["time"]}" font-size="11">t (s)</text>')
    defs = (f'<defs><marker id="{uid}-head" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" '
            f'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="{COLOURS["line"]}"/></marker></defs>')
    label = (f"Ladder of {ladder.scenario} at {ladder.point}: {len(ladder.arrows)} arrows for "
             f"{ladder.drawn} of {ladder.total} packets")
    return (f'<svg class="ladder" data-scenario="{escape(ladder.scenario)}" data-point="{escape(ladder.point)}" '
            f'data-arrows="{len(ladder.arrows)}" data-packets="{ladder.total}" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(label)}" '
            f'font-family="ui-monospace, SFMono-Regular, Menlo, Consolas, monospace" font-size="{FONT}">'
            f"<title>{escape(label)}</title>{defs}" + "".join(head) + "".join(body) + "</svg>")


def _arrow(a: Arrow, x1: float, x2: float, y: float, uid: str) -> str:
    colour = COLOURS["rst"] if a.rst else COLOURS["line"]
    direction = 1 if x2 >= x1 else -1
    end = x2 - direction * (0 if a.rst else 1)
    classes = "seg" + (" rst" if a.rst else "") + (" collapsed" if a.collapsed else "")
    what = f"packet {a.first}" if a.first == a.last else f"packets {a.first}–{a.last}"
    tip = f"{a.t:.6f} s {a.src} → {a.dst} {a.label} ({what})"
    parts = [f'<g class="{classes}" data-first="{a.first}" data-last="{a.last}"><title>{escape(tip)}</title>']
    if a.rst:
        lo, hi = sorted((x1, x2))
        parts.append(f'<rect x="{lo - 12:.1f}" y="{y - 22}" width="{hi - lo + 24:.1f}" height="28" rx="4" '
                     f'fill="#ffcdd2" fill-opacity="0.45"/>')
    parts.append(f'<text x="6" y="{y + 4}" fill="{COLOURS["time"]}" font-size="11">{a.t:.6f}</text>')
    parts.append(f'<text x="{(x1 + x2) / 2:.1f}" y="{y - 7}" text-anchor="middle" fill="{colour}"'
                 + (' font-weight="bold"' if a.rst else "") + f">{escape(a.label)}</text>")
    dash = ' stroke-dasharray="7 4"' if a.collapsed else ""
    if a.rst:
        parts.append(f'<line x1="{x1:.1f}" y1="{y}" x2="{end:.1f}" y2="{y}" stroke="{colour}" stroke-width="2.6"{dash}/>')
        parts.append(f'<path d="M{end - 7:.1f},{y - 7} L{end + 7:.1f},{y + 7} M{end - 7:.1f},{y + 7} L{end + 7:.1f},{y - 7}" '
                     f'stroke="{colour}" stroke-width="3"/>')
    else:
        parts.append(f'<line x1="{x1:.1f}" y1="{y}" x2="{end:.1f}" y2="{y}" stroke="{colour}" stroke-width="1.6"'
                     f'{dash} marker-end="url(#{uid}-head)"/>')
    parts.append("</g>")
    return "".join(parts)


def _note(note: Note, x_lo: float, x_hi: float, y: float, half: float) -> str:
    fill, stroke = COLOURS["rst_note" if note.kind == "rst" else note.kind]
    w = max(_w(note.text) + 16, x_hi - x_lo + 40 if x_hi > x_lo else 0)
    cx = (x_lo + x_hi) / 2
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
    if ladder.point:
        parts.append(f'<p class="muted">Ladder at <b>{escape(ladder.point)}</b> '
                     f'(<a href="{escape(sid)}/{escape(ladder.point)}.pcap">{escape(ladder.point)}.pcap</a>): '
                     f"{ladder.total} packets, time in seconds since the first.</p>")
        parts.append(f'<div class="diagram">{svg_ladder(ladder)}</div>')
    checks = doc.get("checks", [])
    parts.append("<h3>Checks</h3>" + _table(
        ["", "check", "expected", "observed"],
        [[mark(c, "✓", "✗"), f"{c['kind']} @ {c['subject']}", c["expected"], c["observed"]] for c in checks],
        bad=[not holds(c) for c in checks]))
    for point, packets in doc.get("packets", {}).items():
        rows = [[*r[:4], str(r[4]).strip("`"), *r[5:]] for r in packet_rows(packets)]
        parts.append(f'<details{" open" if point == ladder.point else ""}><summary>Packets at {escape(point)} '
                     f"({len(packets)})</summary>"
                     + _table(["#", "t (s)", "from", "to", "flags", "seq", "ack", "len", "dir"], rows,
                              numeric=(0, 1, 5, 6, 7), bad=[("R" in p["flags"]) for p in packets]) + "</details>")
    events = doc.get("events", [])
    if events:
        parts.append(f"<details><summary>What the applications saw ({len(events)} calls)</summary>" + _table(
            ["t (s)", "host", "call", "socket", "outcome"],
            [[f"{e.get('t', 0):.3f}".replace("-0.000", "0.000"), e.get("host"), e.get("call"), e.get("sock") or "", event_outcome(e)]
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
