"""The ladder model: every capture point's packets and the applications' outcomes, as rows to draw.

A ladder (a sequence diagram of TCP segments) is built once from a scenario's
result document (result.json): each host is a lifeline, each segment one arrow
from where it was first seen to where it was last seen (journey.py matches the
capture points), marked at every capture point that saw it. It is drawn three
ways from the same rows: Mermaid
for the Markdown page (pages.py), inline SVG for index.html (html.py) and
rich text in the terminal (console.py). Everything about *what* is drawn lives
here: which capture point, which hosts are participants and in which order,
which segments are drawn, collapsed or left out, where a time gap or an
application's error is noted, and which segment is a reset. The renderers only
decide how it looks.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .journey import Journey, lifelines, match_journeys

GAP_NOTE = 0.2        # seconds: a longer pause between two rows is written on the ladder
MAX_ARROWS = 30       # arrows drawn at most; the rest is summarised in a note
STRETCH = 8           # a run of more plain segments than this is collapsed …
KEEP_EDGE = 2         # … keeping this many drawn at each end of the run


@dataclass(frozen=True)
class Participant:
    """A host (or an address no host of the run has) with its address."""

    name: str
    address: str | None = None


@dataclass(frozen=True)
class Arrow:
    """One segment, or a collapsed run of plain segments (`count` > 1), from one participant to another."""

    src: str
    dst: str
    flags: str
    label: str               # what is written on the arrow: flags, seq/ack/len (and ports when several connections)
    t: float                 # seconds since the run's t0 (first packet of the run)
    first: int               # 1-based packet number in the capture point's table
    last: int                # == first unless collapsed
    count: int = 1
    t_last: float | None = None
    seen: tuple[str, ...] = ()   # the capture points that saw it (a mark on each of their lifelines)
    forged: bool = False         # starts partway: its source's capture never saw it leave
    stopped: bool = False        # ends partway: its destination's capture never saw it arrive
    retransmissions: int = 0     # a train of the same segment sent again: how many times again

    @property
    def rst(self) -> bool:
        return "R" in self.flags

    @property
    def collapsed(self) -> bool:
        return self.count > 1


@dataclass(frozen=True)
class Note:
    """Text written on the ladder over one or more participants.

    kind: gap (a pause), error (an application call failed), timeout (it gave
    up), info (a host restarted, an end of stream), rst (what the reset means),
    omitted (segments not drawn).
    """

    kind: str
    text: str
    over: tuple[str, ...]
    t: float | None = None


Row = Arrow | Note


@dataclass
class Ladder:
    scenario: str
    point: str                          # the capture point drawn, or "" for all of them
    participants: list[Participant]
    rows: list[Row] = field(default_factory=list)
    total: int = 0                      # segments on the wire (each counted once however many points saw it)
    drawn: int = 0                      # segments drawn as (or inside) an arrow
    points: list[str] = field(default_factory=list)     # the capture points drawn

    @property
    def where(self) -> str:
        """`client, router, server` or the one point drawn."""
        return self.point or ", ".join(self.points)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.participants]

    def column(self, name: str) -> int:
        return self.names.index(name)

    def span(self, row: Row) -> tuple[int, int]:
        """The leftmost and rightmost participant column a row touches."""
        cols = [self.column(n) for n in ((row.src, row.dst) if isinstance(row, Arrow) else row.over)]
        return min(cols), max(cols)

    def geometry(self, measure: Callable[[str], float], minimum: float, pad: float,
                 notes_widen: bool = True) -> tuple[float, float]:
        """(spacing between neighbouring columns, margin left and right of the outer columns), in the
        renderer's unit (`measure` gives a text's width): every label fits over its span, every note over
        one column fits around it, and so do the participants' names and addresses."""
        spacing = minimum
        half = minimum / 2
        for row in self.rows:
            lo, hi = self.span(row)
            text = row.label if isinstance(row, Arrow) else row.text
            if not notes_widen and isinstance(row, Note):
                continue                # the renderer lets a note overhang its span instead
            if hi > lo:
                spacing = max(spacing, (measure(text) + 2 * pad) / (hi - lo))
            else:
                half = max(half, measure(text) / 2 + pad)
        for p in self.participants:
            half = max(half, max(measure(p.name), measure(p.address or "")) / 2 + pad)
        return spacing, half

    @property
    def arrows(self) -> list[Arrow]:
        return [r for r in self.rows if isinstance(r, Arrow)]

    @property
    def notes(self) -> list[Note]:
        return [r for r in self.rows if isinstance(r, Note)]


# --- choosing what to draw ------------------------------------------------------------------------------------------


def default_point(doc: Mapping[str, Any]) -> str | None:
    """The client's capture (it has every packet the client saw), else the first capture point the scenario names."""
    points = list(doc.get("capture_points") or doc.get("packets", {}).keys())
    if not points:
        return None
    return "client" if "client" in points else points[0]


def seconds(value: float) -> str:
    """A duration as people read it on a ladder: +1.03 s, +250 ms."""
    if value >= 10:
        return f"{value:.1f} s"
    if value >= 1:
        return f"{value:.2f} s"
    return f"{value * 1000:.0f} ms"


def segment_label(p: Mapping[str, Any], ports: bool = False) -> str:
    """`[P.] seq=1:101 ack=1 len=100`: tcpdump's flags and numbers (relative where the ISN is known)."""
    flags = p["flags"]
    parts = [f"[{flags}]"]
    seq, length = p.get("seq"), int(p.get("len") or 0)
    if length and seq is not None:
        parts.append(f"seq={seq}:{(seq + length) & 0xFFFFFFFF}")
    elif seq is not None:
        parts.append(f"seq={seq}")
    if p.get("ack") is not None and "." in flags:
        parts.append(f"ack={p['ack']}")
    if length:
        parts.append(f"len={length}")
    text = " ".join(parts)
    return f"{p['sport']}→{p['dport']} {text}" if ports else text


def _plain(p: Mapping[str, Any]) -> bool:
    """A segment a long run may hide: no SYN, FIN or RST."""
    return not any(c in p["flags"] for c in "SFR")


def _event_note(e: Mapping[str, Any]) -> Note | None:
    """A note for what an application saw: an errno, a timeout it gave up on, a restart, an end of stream."""
    host, call, sock = e.get("host"), e.get("call"), e.get("sock")
    if not host or not call:
        return None
    t = e.get("t")
    if t is not None and e.get("end") is not None and e.get("start") is not None:
        t = float(t) + float(e["end"]) - float(e["start"])      # the outcome is seen when the call returns
    took = float(e["end"]) - float(e["start"]) if e.get("end") is not None and e.get("start") is not None else None
    after = f" after {seconds(took)}" if took is not None and took >= 0.05 else ""
    who = f"{call} {sock}" if sock else str(call)
    errno = e.get("errno")
    result = e.get("result")
    if call == "restart":
        return Note("info", f"{host} restarted: no sockets, same address", (host,), t)
    if errno:
        return Note("error", f"{host}: {who} → {errno}{after}", (host,), t)
    if result == "poll-timeout":
        return Note("timeout", f"{host}: {who} gave up, no answer{after}", (host,), t)
    if call == "recv" and isinstance(result, Mapping) and result.get("eof") and not result.get("received"):
        return Note("info", f"{host}: {who} → EOF (0 bytes)", (host,), t)
    if call in ("connect", "accept", "recv", "send", "close") and e.get("ok") and took is not None and took >= GAP_NOTE:
        return Note("info", f"{host}: {who} → ok{after}", (host,), t)     # a call that waited, then succeeded
    if call == "exec" and isinstance(result, Mapping) and result.get("rc") not in (0, None):
        return Note("error", f"{host}: program exited with {result.get('rc')}", (host,), t)
    return None


def _gap_note(g: Mapping[str, Any], over: tuple[str, ...]) -> Note:
    """A note for segments let go before they were drawn: a long connection's middle (explain keeps its head
    and its tail before the first RST, facts.Connection.elide), or one `held` but left out of the drawing
    (connection_ladder.drawn_from)."""
    span = f"({float(g['t']):.3f}–{float(g['t_last']):.3f} s)"
    if g.get("held"):
        return Note("omitted", f"… {int(g['count']):,} segments not drawn {span}: a connection this long is drawn "
                               "from its beginning, its first RST and its end", over, float(g["t"]))
    return Note("omitted", f"… {int(g['count']):,} segments of a long connection not kept {span}: counted and "
                           "summed, not drawn", over, float(g["t"]))


def _segment_arrow(p: Mapping[str, Any], n: int, ports: bool) -> Arrow:
    """One segment's arrow: from where it was first seen to where it was last seen, marked where it was seen."""
    label = segment_label(p, ports)
    repeats = int(p.get("retx") or 0)
    if repeats:
        label += f" ×{repeats + 1} in {seconds(float(p['t_last']) - float(p['t']))}"
    if p.get("nat"):
        label += f" (NAT at {p['nat']})"
    if p.get("forged") and "R" not in p["flags"]:      # a forged reset says so in its note
        label += f" as {p['src']}"
    last = n + repeats
    return Arrow(p["from"], p["to"], p["flags"], label, float(p["t"]), n, last, repeats + 1,
                 float(p["t_last"]) if repeats else None, tuple(p.get("seen") or ()), bool(p.get("forged")),
                 bool(p.get("stopped")), repeats)


def _summary_arrows(run: Sequence[tuple[int, Mapping[str, Any]]], ports: bool) -> list[Arrow]:
    """A collapsed run of plain segments: one arrow per direction and connection, in order of appearance."""
    groups: dict[tuple[Any, ...], list[tuple[int, Mapping[str, Any]]]] = {}
    for i, p in run:
        groups.setdefault((p["from"], p["to"], p["sport"], p["dport"]), []).append((i, p))
    arrows = []
    for (src, dst, sport, dport), members in groups.items():
        data = [p for _, p in members if p.get("len")]
        first, last = members[0][1], members[-1][1]
        if data:
            lo = data[0]["seq"]
            hi = (data[-1]["seq"] + data[-1]["len"]) & 0xFFFFFFFF if data[-1]["seq"] is not None else None
            total = sum(int(p["len"]) for p in data)
            what = f"{len(data)} data segments seq={lo}:{hi} ({total} bytes)"
            if len(data) < len(members):
                what += f" + {len(members) - len(data)} ACKs"
        else:
            what = f"{len(members)} ACKs ack={first.get('ack')}…{last.get('ack')}"
        label = f"{sport}→{dport} ×{what}" if ports else f"×{what}"
        seen = tuple(dict.fromkeys(pt for _, p in members for pt in (p.get("seen") or ())))
        arrows.append(Arrow(src, dst, "/".join(sorted({p["flags"] for _, p in members})), label, float(first["t"]),
                            members[0][0] + 1, members[-1][0] + 1, len(members), float(last["t"]), seen))
    return arrows


def _records(journeys: Sequence[Journey]) -> list[dict[str, Any]]:
    """The journeys as segment records to draw, a retransmission train (the same segment again) as one."""
    out: list[dict[str, Any]] = []
    for j in journeys:
        rec = {**j.packet, "t": j.t, "from": j.start, "to": j.stop, "seen": j.points, "forged": j.forged,
               "stopped": j.stopped, "retx": 0, "key": j.key, "nat": j.translated_at}
        prev = out[-1] if out else None
        if prev is not None and prev["key"] == rec["key"] and all(
                prev[k] == rec[k] for k in ("from", "to", "forged", "stopped")):
            prev["retx"] += 1
            prev["t_last"] = rec["t"]
            continue
        out.append(rec)
    return out


def _kernel_reason(p: Mapping[str, Any]) -> str | None:
    """The kernel's reason for a RST when the result carries it (the witness's record on the packet)."""
    for key in ("kernel", "witness", "reason"):
        value = p.get(key)
        if isinstance(value, Mapping):
            if str(value.get("note", "")).startswith("kernel: "):   # the witness's own words, with the state
                return str(value["note"])[len("kernel: "):]
            if value.get("reason"):
                return str(value["reason"])
            if value.get("sent_by_tcp_stack") is False:
                return f"not sent by {value.get('sender') or p.get('src')}'s TCP"
        elif isinstance(value, str) and value:
            return value
    return None


def kernel_reasons(doc: Mapping[str, Any]) -> dict[str, str]:
    """host -> what the kernel said of the RSTs its TCP sent (the witnessed `reasons` checks of the result)."""
    out = {}
    for c in doc.get("checks", []):
        if c.get("kind") == "reasons" and c.get("witnessed", True):
            observed = str(c.get("observed", ""))
            distinct = list(dict.fromkeys(r.strip() for r in observed.split(",") if r.strip()))
            if observed == "no RST sent by its TCP":
                out[str(c["subject"])] = f"no RST sent by {c['subject']}'s TCP"
            elif distinct:
                out[str(c["subject"])] = distinct[0] if len(distinct) == 1 else " or ".join(distinct)
    return out


def _rst_note(a: Arrow, p: Mapping[str, Any], events: Sequence[Mapping[str, Any]],
              reasons: Mapping[str, str]) -> Note:
    """Beside a RST: who sent it (or forged it), the kernel's reason, and the errno the receiver's application got."""
    who = "RST+ACK" if "." in a.flags else "RST"
    text = f"{who} forged at {a.src} (as {p['src']})" if a.forged else f"{who} from {a.src}"
    reason = _kernel_reason(p) or reasons.get(str(p["src"]))
    if reason:
        text += f" · kernel: {reason}"
    receiver = str(p["dst"])
    errno = next((e for e in events if e.get("host") == receiver and e.get("errno") and e.get("end") is not None
                  and e.get("start") is not None and e.get("t") is not None
                  and float(e["t"]) + float(e["end"]) - float(e["start"]) >= a.t - 0.001), None)
    if errno is not None:
        text += f" · {receiver}: {errno.get('call')} → {errno['errno']}"
    return Note("rst", text, (a.src, a.dst), a.t)


def build_ladder(doc: Mapping[str, Any], point: str | None = None, max_arrows: int = MAX_ARROWS) -> Ladder:
    """The ladder across every capture point of a result document (or of the one `point` given)."""
    all_packets: Mapping[str, Sequence[Mapping[str, Any]]] = doc.get("packets", {}) or {}
    chosen = {point: all_packets.get(point, [])} if point else dict(all_packets)
    journeys = match_journeys(chosen)
    packets = _records(journeys)
    hosts = doc.get("hosts", {})
    connections = {frozenset(((p["src"], p["sport"]), (p["dst"], p["dport"]))) for p in packets}
    ports = len(connections) > 1

    # 1. segments into arrows: long runs of plain segments collapsed
    arrows: list[Arrow] = []
    source: dict[int, Mapping[str, Any]] = {}          # arrow id -> its segment record (for the RST note)
    numbers = [1]                  # each segment's number on the wire, counting those the document does not hold
    gone = sorted((float(g["t"]), int(g["count"])) for g in doc.get("gaps", []))
    at = 0
    for p in packets:
        while at < len(gone) and gone[at][0] < float(p["t"]):
            numbers[-1] += gone[at][1]
            at += 1
        numbers.append(numbers[-1] + 1 + int(p["retx"]))
    i = 0
    while i < len(packets):
        j = i
        while (j < len(packets) and _plain(packets[j]) and not packets[j]["retx"]
               and (j == i or float(packets[j]["t"]) - float(packets[j - 1]["t"]) <= GAP_NOTE)):
            j += 1
        if j - i > STRETCH:
            run = [(numbers[k] - 1, packets[k]) for k in range(i, j)]
            arrows += [_segment_arrow(p, n + 1, ports) for n, p in run[:KEEP_EDGE]]
            arrows += _summary_arrows(run[KEEP_EDGE:-KEEP_EDGE], ports)
            arrows += [_segment_arrow(p, n + 1, ports) for n, p in run[-KEEP_EDGE:]]
            i = j
            continue
        arrow = _segment_arrow(packets[i], numbers[i], ports)
        source[id(arrow)] = packets[i]
        arrows.append(arrow)
        i += 1

    # 2. at most max_arrows: keep every reset and the segment it answers, then the beginning and the end
    kept: list[Arrow | None] = list(arrows)
    if len(arrows) > max_arrows:
        keep: set[int] = set()
        for k, a in enumerate(arrows):
            if a.rst and len(keep) < max_arrows // 2:
                keep.update({k - 1, k} if k else {k})
        head = (max_arrows - len(keep)) * 2 // 3
        k = 0
        while head > 0 and k < len(arrows):
            if k not in keep:
                keep.add(k)
                head -= 1
            k += 1
        k = len(arrows) - 1
        while len(keep) < max_arrows and k >= 0:
            if arrows[k].rst and k > 0 and k - 1 not in keep and k not in keep:
                if len(keep) + 2 > max_arrows:     # a reset without the segment it answers: leave both out
                    break
                keep.add(k - 1)
            keep.add(k)
            k -= 1
        kept = [a if k in keep else None for k, a in enumerate(arrows)]

    # 3. the application's outcomes, by time, among the arrows
    raw_events = list(doc.get("events", []))
    reasons = kernel_reasons(doc)
    events = [n for n in (_event_note(e) for e in raw_events) if n is not None]
    participants_used = {a.src for a in arrows} | {a.dst for a in arrows} | {n.over[0] for n in events}
    names = lifelines(list(hosts)) + sorted(participants_used - set(hosts))      # every host is a lifeline
    participants = [Participant(n, hosts.get(n, {}).get("address") if n in hosts else None) for n in names]
    everyone = (names[0], names[-1]) if len(names) > 1 else tuple(names)

    # entries: (time, 1 for a segment / 2 for an application note, the row, drawn?)
    timeline: list[tuple[float, int, Row, bool]] = [(a.t, 1, a, kept[k] is not None) for k, a in enumerate(arrows)]
    timeline += [(n.t if n.t is not None else float("inf"), 2, n, True) for n in events]
    gaps = list(doc.get("gaps", []))      # segments the document does not hold (a long connection's middle)
    gap_ends: dict[int, float] = {}       # id of such a gap's note -> the time of its last segment
    for g in gaps:
        note = _gap_note(g, everyone)
        gap_ends[id(note)] = float(g["t_last"])
        timeline.append((float(g["t"]), 2, note, True))
    timeline.sort(key=lambda item: (item[0], item[1]))

    rows: list[Row] = []
    previous: float | None = None
    omitted: list[Arrow] = []

    def flush_omitted() -> None:
        if omitted:
            n = sum(a.count for a in omitted)
            last_t = omitted[-1].t_last if omitted[-1].t_last is not None else omitted[-1].t
            rows.append(Note("omitted", f"… {n} more segments not drawn (segments {omitted[0].first}–{omitted[-1].last}, "
                                        f"{omitted[0].t:.3f}–{last_t:.3f} s): see the packet tables",
                             everyone, omitted[0].t))
            omitted.clear()

    for t, _, row, shown in timeline:
        if not shown:
            assert isinstance(row, Arrow)
            omitted.append(row)
            previous = row.t_last if row.t_last is not None else t
            continue
        flush_omitted()
        if previous is not None and t != float("inf") and t - previous > GAP_NOTE:
            rows.append(Note("gap", f"+{seconds(t - previous)}", everyone, previous))
        rows.append(row)
        if isinstance(row, Arrow) and row.rst:
            record = source.get(id(row), {"src": row.src, "dst": row.dst})
            rows.append(_rst_note(row, record, raw_events, reasons))
        if t != float("inf"):
            previous = row.t_last if isinstance(row, Arrow) and row.t_last is not None else gap_ends.get(id(row), t)
    flush_omitted()

    drawn = sum(a.count for a in kept if a is not None)
    total = sum(1 + int(p["retx"]) for p in packets) + sum(int(g["count"]) for g in gaps)
    return Ladder(str(doc.get("scenario", "")), point or "", participants, rows, total, drawn,
                  [point] if point else lifelines(list(chosen)))
