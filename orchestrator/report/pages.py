"""The pages people read, in Markdown: a scenario's page with its Mermaid ladder, the run's index, the CI job summary.

Everything here is a pure function of result documents (result.json) and the
run summary (summary.json), so the pages can be rebuilt from a folder of
results without the lab (`python -m orchestrator report DIR`).
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..verify import holds, mark, tally
from .ladder import Arrow, Ladder, Note, build_ladder

VERDICT_MARK = {"passed": "✅", "failed": "❌", "error": "⚠️"}

# Mermaid: `#` starts an entity code, `;` ends a statement, `<`/`>` are HTML, a bare "end" closes a block.
_MERMAID_CHARS = str.maketrans({"#": "＃", ";": ",", "<": "‹", ">": "›", "\n": " ", "\r": " ", "`": "'"})
_BARE_END = re.compile(r"(?<![(\[{\"\w])\b(end)\b(?![)\]}\"\w])", re.IGNORECASE)
# Colours of highlighted rows (Mermaid `rect`): resets, and calls that failed or gave up
RST_RECT = "rgb(255, 221, 221)"
APP_RECT = "rgb(255, 243, 205)"


def mermaid_text(text: str) -> str:
    """A label safe inside a Mermaid sequence diagram (message, note or participant alias)."""
    text = " ".join(str(text).translate(_MERMAID_CHARS).split())
    return _BARE_END.sub(lambda m: f"({m.group(1)})", text)


def mermaid(ladder: Ladder) -> str:
    """The ladder as a Mermaid `sequenceDiagram` (the text inside a ```mermaid fence)."""
    ids = {p.name: f"P{i + 1}" for i, p in enumerate(ladder.participants)}
    lines = ["sequenceDiagram"]
    for p in ladder.participants:
        alias = mermaid_text(p.name) + (f"<br/>{mermaid_text(p.address)}" if p.address else "")
        lines.append(f"    participant {ids[p.name]} as {alias}")
    rows = ladder.rows
    i = 0
    while i < len(rows):
        row = rows[i]
        if isinstance(row, Arrow):
            if row.rst:
                arrow = "--x" if row.collapsed else "-x"
            elif row.stopped:
                arrow = "--)" if row.collapsed else "-)"      # an open arrow: it got no further than here
            else:
                arrow = "-->>" if row.collapsed else "->>"
            label = row.label + (" (no further)" if row.stopped else "")
            line = f"    {ids[row.src]}{arrow}{ids[row.dst]}: {mermaid_text(label)}"
            following = rows[i + 1] if i + 1 < len(rows) else None
            if row.rst:
                lines += [f"    rect {RST_RECT}", line]
                if isinstance(following, Note) and following.kind == "rst":
                    lines.append(_note(following, ids))
                    i += 1
                lines.append("    end")
            else:
                lines.append(line)
        elif row.kind in ("error", "timeout"):
            lines += [f"    rect {APP_RECT}", _note(row, ids), "    end"]
        else:
            lines.append(_note(row, ids))
        i += 1
    return "\n".join(lines) + "\n"


def _note(note: Note, ids: Mapping[str, str]) -> str:
    over = ",".join(dict.fromkeys(ids[n] for n in note.over))
    prefix = {"error": "⚠ ", "timeout": "⚠ "}.get(note.kind, "")
    return f"    Note over {over}: {mermaid_text(prefix + note.text)}"


# --- Markdown helpers -----------------------------------------------------------------------------------------------


def cell(value: Any) -> str:
    """A Markdown table cell: no pipes or line breaks."""
    return " ".join(str("" if value is None else value).replace("|", "\\|").split())


def _text(value: Any) -> str:
    return " ".join(str(value or "").split())


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]], align: str | None = None) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", align or "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return lines


def checks_line(doc: Mapping[str, Any]) -> str:
    passed, _, rest = tally(doc.get("checks", [])).partition("/")
    return f"{passed} of {rest} checks held"


def kernel_words(doc: Mapping[str, Any]) -> list[str]:
    """One line per RST on the wire with the kernel's word on it (empty when the kernel was not watched)."""
    out = []
    for point, packets in doc.get("packets", {}).items():
        for i, p in enumerate(packets):
            if p.get("kernel"):
                who = "RST+ACK" if "." in p["flags"] else "RST"
                out.append(f"packet {i + 1} at {point}: {who} from {p['src']} — {p['kernel']['text']}")
    return out


def kernel_lines(doc: Mapping[str, Any]) -> list[str]:
    """The page's section on what the kernel said about each RST (tcp:tcp_send_reset), or why it could not."""
    witness = doc.get("kernel_witness") or {}
    if not witness:
        return []
    if not witness.get("watched"):
        return ["## The kernel's reasons", "", f"Not witnessed: {_text(witness.get('why_not') or '')}.", ""]
    words = kernel_words(doc)
    return (["## The kernel's reasons", "",
             "What the kernel itself said about each reset (tracepoint `tcp:tcp_send_reset`, its reason and the "
             "sending socket's state; the receiving socket's state from `tcp:tcp_receive_reset`):", ""]
            + ([f"- {_text(w)}" for w in words] or ["- no RST on the wire, and none sent by a host's TCP"]) + [""])


def packet_rows(packets: Sequence[Mapping[str, Any]]) -> list[list[Any]]:
    return [[i + 1, f"{p['t']:.6f}", f"{p['src']}:{p['sport']}", f"{p['dst']}:{p['dport']}", f"`{p['flags']}`",
             p["seq"], "" if p["ack"] is None else p["ack"], p["len"], p.get("dir") or ""]
            for i, p in enumerate(packets)]


def event_outcome(e: Mapping[str, Any]) -> str:
    if e.get("errno"):
        return str(e["errno"])
    result = e.get("result")
    if isinstance(result, str):
        return result
    if isinstance(result, Mapping):
        if "received" in result:
            return f"{result['received']} bytes" + (", end of stream" if result.get("eof") else "")
        if result.get("signal"):
            return f"killed by {result['signal']}"
        if "rc" in result:
            return f"exit {result['rc']}"
    if isinstance(result, list) and result and isinstance(result[0], Mapping) and "sent" in result[0]:
        return f"{sum(int(r.get('sent') or 0) for r in result)} bytes sent"
    return "ok" if e.get("ok") else "failed"


def scenario_page(doc: Mapping[str, Any]) -> str:
    """A scenario's page: what it does and why, the claim against what was seen, the ladder, packets, checks, pcaps."""
    v = doc["verdict"]
    lines = [f"# {doc['scenario']}: {_text(doc['title'])}", "",
             f"**{VERDICT_MARK.get(v, '')} {v}**: {checks_line(doc)}"
             + (f". Error: {_text(doc['error'])}" if doc.get("error") else "")
             + f" · kernel {doc.get('kernel') or '?'} · run `{doc.get('run_id', '')}` · {doc.get('started', '')}", ""]
    if doc.get("claim"):   # a scenario of one's own may make no claim: then there is nothing to weigh
        lines += ["## The claim and what Linux did", "",
                  f"> **The article says:** {_text(doc['claim'])}", "",
                  f"**Observed:** {_text(doc.get('observed')) or '(not recorded)'}", "",
                  "**Does the claim hold on Linux?** " + ("yes" if doc.get("article_holds", True) else "**no**"), ""]
    elif doc.get("observed"):
        lines += ["## What Linux did", "", _text(doc["observed"]), ""]
    if doc.get("explanation"):
        lines += ["## Why", "", _text(doc["explanation"]), ""]
    if doc.get("fix"):
        lines += ["## What fixes it", "", _text(doc["fix"]), ""]
    if doc.get("steps"):
        lines += ["## What the scenario does", ""]
        lines += [f"{i + 1}. {s}" for i, s in enumerate(doc["steps"])] + [""]

    ladder = build_ladder(doc)
    if ladder.participants:
        pcaps = ", ".join(f"[{pt}.pcap]({pt}.pcap)" for pt in ladder.points)
        lines += ["## The ladder", "",
                  f"Drawn across every capture point ({pcaps}; all of them in one annotated "
                  f"[{doc['scenario']}.pcapng]({doc['scenario']}.pcapng) for Wireshark): {ladder.total} segments"
                  + (f", {ladder.drawn} of them drawn" if ladder.drawn < ladder.total else "")
                  + ". Each arrow runs from the host where the segment was first seen to where it was last seen: "
                  "an arrow that ends at the router (open head) got no further, a reset that starts there was made "
                  "there. Times are seconds since the run's first packet; a pause over "
                  f"{int(0.2 * 1000)} ms is written on the diagram, a retransmission train is one arrow, a reset "
                  "is drawn with a cross in red with the kernel's reason and the application's errno beside it.",
                  "", "```mermaid", mermaid(ladder).rstrip("\n"), "```", ""]

    lines += kernel_lines(doc)
    lines += ["## Packets", ""]
    for point, packets in doc.get("packets", {}).items():
        lines += [f"### At {point}", ""]
        if packets:
            lines += _table(["#", "t (s)", "from", "to", "flags", "seq", "ack", "len", "dir"], packet_rows(packets),
                            "|---:|---:|---|---|---|---:|---:|---:|---|")
        else:
            lines.append("No TCP packets.")
        lines.append("")

    events = doc.get("events", [])
    if events:
        lines += ["## What the applications saw", ""]
        lines += _table(["t (s)", "host", "call", "socket", "outcome", "took"],
                        ([f"{e.get('t', 0):.3f}".replace("-0.000", "0.000"), e.get("host"), e.get("call"), e.get("sock") or "",
                          event_outcome(e), f"{float(e['end']) - float(e['start']):.3f} s"
                          if e.get("end") is not None and e.get("start") is not None else ""] for e in events))
        lines.append("")
        lines += _command_output(events)

    lines += ["## Checks", ""]
    lines += _table(["", "check", "expected", "observed"],
                    ([mark(c), f"{c['kind']} @ {c['subject']}", c["expected"], c["observed"]]
                     for c in doc.get("checks", [])))
    lines.append("")

    counters = {h: d for h, d in doc.get("counters", {}).items() if d}
    if counters:
        lines += ["## Kernel counters (change over the scenario)", ""]
        lines += _table(["host", "counter", "change"],
                        ([h, k, f"{v:+d}"] for h, d in counters.items() for k, v in sorted(d.items())))
        lines.append("")

    lines += ["## Captures", ""]
    for host, cap in doc.get("captures", {}).items():
        lines.append(f"- [{cap['file']}]({cap['file']}) at {host}: {cap.get('captured')} packets captured, "
                     f"{cap.get('dropped')} dropped by the kernel")
    lines += ["", f"Scenario file: `{_source_name(doc)}`. [All scenarios of this run](../index.md)."]
    return "\n".join(lines) + "\n"


def _command_output(events: Sequence[Mapping[str, Any]], max_lines: int = 40) -> list[str]:
    """What the scenario's commands (shell, exec) printed: a conntrack table, rule counters, a program's log."""
    lines: list[str] = []
    for e in events:
        result = e.get("result")
        if e.get("call") not in ("shell", "exec") or not isinstance(result, Mapping):
            continue
        text = "\n".join(str(result.get(k) or "").rstrip() for k in ("stdout", "stderr")).strip()
        if not text:
            continue
        shown = text.splitlines()
        if len(shown) > max_lines:
            shown = shown[:max_lines] + [f"… ({len(text.splitlines()) - max_lines} more lines in result.json)"]
        lines += [f"**{e.get('host')}** `{e.get('call')}` at {float(e.get('t', 0)):.3f} s:", "", "```text",
                  *(line.replace("```", "` ` `") for line in shown), "```", ""]
    return (["## What the commands printed", ""] + lines) if lines else []


def _source_name(doc: Mapping[str, Any]) -> str:
    """The scenario file, relative to the repository when it is one of the catalogue's."""
    source = str(doc.get("source", ""))
    marker = "orchestrator/scenarios/"
    return source[source.index(marker):] if marker in source else source.rsplit("/", 1)[-1]


def index_page(summary: Mapping[str, Any], docs: Sequence[Mapping[str, Any]]) -> str:
    """The run's index: every scenario with its verdict, one line of what it shows, and a link."""
    lines = ["# RST Lab run", "",
             (f"Run `{summary.get('run_id', '')}` on kernel {summary.get('kernel') or '?'}: {summary['passed']} of "
              f"{summary['total']} scenarios passed. The same pages with the ladders drawn: [index.html](index.html)."),
             ""]
    lines += _table(["scenario", "verdict", "checks", "article holds", "what it shows"],
                    ([f"[{d['scenario']}]({d['scenario']}/README.md)", f"{VERDICT_MARK.get(d['verdict'], '')} {d['verdict']}",
                      tally(d.get("checks", [])),
                      "yes" if d.get("article_holds", True) else "**no**", _text(d["title"])] for d in docs))
    failing = failing_lines(docs)
    if failing:
        lines += ["", "## What failed", ""] + failing
    return "\n".join(lines) + "\n"


def failing_lines(docs: Sequence[Mapping[str, Any]], link: bool = True) -> list[str]:
    """One bullet per scenario that did not pass, with its failed checks (expected vs observed) under it."""
    lines = []
    for d in docs:
        if d["verdict"] == "passed":
            continue
        name = f"[{d['scenario']}]({d['scenario']}/README.md)" if link else f"`{d['scenario']}`"
        lines.append(f"- {name} {d['verdict']}" + (f": {_text(d['error'])}" if d.get("error") else ""))
        for c in d.get("checks", []):
            if not holds(c):
                lines.append(f"  - ❌ **{c['kind']} @ {c['subject']}**: expected `{_text(c['expected'])}`; "
                             f"observed `{_text(c['observed'])}`")
    return lines


def step_summary(summary: Mapping[str, Any], docs: Sequence[Mapping[str, Any]]) -> str:
    """Markdown for a CI job summary ($GITHUB_STEP_SUMMARY): verdicts and every failed check."""
    lines = [f"### RST Lab: {summary['passed']} of {summary['total']} scenarios passed", ""]
    lines += _table(["scenario", "verdict", "checks", "what it shows"],
                    ([d["scenario"], f"{VERDICT_MARK.get(d['verdict'], '')} {d['verdict']}",
                      tally(d.get("checks", [])),
                      _text(d["title"])] for d in docs))
    failing = failing_lines(docs, link=False)
    if failing:
        lines += ["", "#### Failed checks", ""] + failing
    return "\n".join(lines) + "\n"
