"""An explained connection as a result-like document, so the lab's ladder (ladder.py) draws it.

`explain` has no scenario and no hosts by name: the two ends of the connection
are the lifelines ("client" and "server" when the SYN says which is which, else
the two endpoints), its packets the one capture point's records. The terminal
(console.py) and the page (explain_html.py) draw the ladder the lab draws for
its own scenarios from this document.
"""
from __future__ import annotations

from typing import Any

from ..explain import Explanation
from .ladder import Ladder, build_ladder

__all__ = ["CAPTURE_POINT", "connection_doc", "connection_ladder"]

CAPTURE_POINT = "capture"


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
    for p in e.segments:
        records.append({
            "t": round(p.time - t0, 6),
            "src": names.get(endpoint(p.src, p.sport), endpoint(p.src, p.sport)),
            "dst": names.get(endpoint(p.dst, p.dport), endpoint(p.dst, p.dport)),
            "sport": p.sport, "dport": p.dport, "flags": p.flags,
            "seq": p.rel_seq if p.rel_seq is not None else p.seq,
            "ack": p.rel_ack if p.rel_ack is not None else (p.ack if p.has_ack else None),
            "relative": p.rel_seq is not None, "len": p.length, "dir": p.direction})
    gaps = [{"t": round(t - t0, 6), "t_last": round(t_last - t0, 6), "count": n} for n, t, t_last in e.elided]
    return {"scenario": name, "hosts": hosts, "capture_points": [CAPTURE_POINT], "packets": {CAPTURE_POINT: records},
            "gaps": gaps}


def connection_ladder(e: Explanation, t0: float, name: str, max_arrows: int = 30) -> Ladder:
    """The ladder of one explained connection (resets kept, long runs collapsed, at most `max_arrows`)."""
    return build_ladder(connection_doc(e, t0, name), max_arrows=max_arrows)
