"""An explained connection as a result-like document, so the lab's ladder (ladder.py) draws it.

`explain` has no scenario and no hosts by name: the two ends of the connection
are the lifelines ("client" and "server" when the SYN says which is which, else
the two endpoints), its packets the one capture point's records. The terminal
(console.py) and the page (explain_html.py) draw the ladder the lab draws for
its own scenarios from this document.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..capture import Packet
from ..explain import Explanation
from .ladder import Ladder, build_ladder

__all__ = ["CAPTURE_POINT", "LADDER_MAX", "connection_doc", "connection_ladder", "drawn_from"]

CAPTURE_POINT = "capture"
# A connection with more segments than LADDER_MAX (one explain holds whole: a stray once its out-of-window segment
# is found, `facts.Connection.held`) is drawn from its first LADDER_EDGE, those within LADDER_AROUND of its first
# RST, and its last LADDER_EDGE; the rest is one note. A ladder draws a dozen or thirty arrows, so nothing drawn
# changes: only the time to find them. Well above what explain holds of a long connection it cuts back
# (facts.Connection.elide).
LADDER_MAX = 6000
LADDER_EDGE = 1000
LADDER_AROUND = 200


def _names(e: Explanation) -> dict[str, str]:
    """endpoint text -> lifeline name."""
    if e.client is not None and e.server is not None:
        return {e.client: "client", e.server: "server"}
    return {e.endpoints[0]: e.endpoints[0], e.endpoints[1]: e.endpoints[1]}


def connection_doc(e: Explanation, t0: float, name: str) -> dict[str, Any]:
    """A result document (scenario, hosts, packets at one capture point) of one explained connection."""
    from ..explain import endpoint

    names = _names(e)
    hosts = {lifeline: {"address": ep if lifeline != ep else None} for ep, lifeline in names.items()}
    records = []
    shown, left = drawn_from(e.segments)
    for p in shown:
        records.append({
            "t": round(p.time - t0, 6),
            "src": names.get(endpoint(p.src, p.sport), endpoint(p.src, p.sport)),
            "dst": names.get(endpoint(p.dst, p.dport), endpoint(p.dst, p.dport)),
            "sport": p.sport, "dport": p.dport, "flags": p.flags,
            "seq": p.rel_seq if p.rel_seq is not None else p.seq,
            "ack": p.rel_ack if p.rel_ack is not None else (p.ack if p.has_ack else None),
            "relative": p.rel_seq is not None, "len": p.length, "dir": p.direction})
    gaps = [{"t": round(t - t0, 6), "t_last": round(t_last - t0, 6), "count": n} for n, t, t_last in e.elided]
    gaps += [{"t": round(first.time - t0, 6), "t_last": round(last.time - t0, 6), "count": n, "held": True}
             for n, first, last in left]
    return {"scenario": name, "hosts": hosts, "capture_points": [CAPTURE_POINT], "packets": {CAPTURE_POINT: records},
            "gaps": gaps}


def drawn_from(segments: Sequence[Packet]) -> tuple[list[Packet], list[tuple[int, Packet, Packet]]]:
    """The segments a ladder is drawn from, and the runs left out: (how many, the first, the last). All of them
    up to LADDER_MAX; beyond, the first and last LADDER_EDGE and those within LADDER_AROUND of the first RST."""
    n = len(segments)
    if n <= LADDER_MAX:
        return list(segments), []
    rst = next((i for i, p in enumerate(segments) if p.is_rst), 0)
    spans = sorted([(0, LADDER_EDGE), (max(0, rst - LADDER_AROUND), rst + LADDER_AROUND + 1), (n - LADDER_EDGE, n)])
    shown: list[Packet] = []
    left: list[tuple[int, Packet, Packet]] = []
    at = 0
    for lo, hi in spans:
        if lo > at:
            left.append((lo - at, segments[at], segments[lo - 1]))
        shown += segments[max(lo, at):hi]
        at = max(at, hi)
    return shown, left


def connection_ladder(e: Explanation, t0: float, name: str, max_arrows: int = 30) -> Ladder:
    """The ladder of one explained connection (resets kept, long runs collapsed, at most `max_arrows`)."""
    return build_ladder(connection_doc(e, t0, name), max_arrows=max_arrows)
