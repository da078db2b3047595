"""Where an unanswered SYN was last seen, across several capture points of one path.

A SYN keeps its sequence number across NAT, which rewrites addresses and
ports but leaves one end's port alone: the same ISN with the same source or
destination port at two points is the same SYN. The points that saw it are
ordered along the path as `paths` orders a connection's points: the client's
own capture first, the server's own last, the others by the SYN's TTL (the
nearer the client, the higher). The SYN was lost after the last point that
saw it; a point on the server's host that did not see it bounds where. Pure:
explanations and points in, explanations out.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import replace

from ..capture import Packet
from .correlate import Hosting, Point, hosting
from .facts import COPY_WINDOW
from .result import SILENT_DROP, CaptureExplanation, Explanation

__all__ = ["follow_syns"]


def follow_syns(results: Sequence[CaptureExplanation], points: Sequence[Point],
                hosts: Sequence[Hosting] | None = None,
                point_syns: Sequence[Iterable[Packet]] | None = None) -> list[CaptureExplanation]:
    """Each point's unanswered SYNs, with where along the path the SYN was last seen. `hosts` and `point_syns`
    (each point's SYNs without ACK, or at least those with an unanswered SYN's sequence number): found as the files
    were read, where `points` hold only some packets."""
    if len(points) < 2 or not any(e.cause == SILENT_DROP for r in results for e in r.explanations):
        return list(results)
    if hosts is None:
        hosts = [hosting(p) for p in points]
    if point_syns is None:
        point_syns = [(p for p in point.packets if p.is_syn and not p.has_ack) for point in points]
    syns: dict[int, list[tuple[int, Packet]]] = defaultdict(list)      # ISN -> (point, SYN)
    for i, found in enumerate(point_syns):
        for p in found:
            syns[p.seq].append((i, p))
    out: list[CaptureExplanation] = []
    for r in results:
        changed = [_followed(e, syns, points, hosts) if e.cause == SILENT_DROP and e.segments else e
                   for e in r.explanations]
        out.append(replace(r, explanations=tuple(changed)))
    return out


def _followed(e: Explanation, syns: dict[int, list[tuple[int, Packet]]], points: Sequence[Point],
              hosts: Sequence[Hosting]) -> Explanation:
    syn = e.segments[0]
    seen: dict[int, list[Packet]] = defaultdict(list)
    for i, p in syns.get(syn.seq, ()):
        if p.sport == syn.sport or p.dport == syn.dport:
            seen[i].append(p)
    if not seen:
        return e
    clients = {p.src for ps in seen.values() for p in ps}
    servers = {p.dst for ps in seen.values() for p in ps}

    def owns(i: int, addresses: set[str]) -> bool:
        return bool(addresses & (hosts[i].own | set(points[i].addresses)))

    def rank(i: int) -> tuple[int, int]:
        if owns(i, clients) and not owns(i, servers):
            return (0, 0)
        if owns(i, servers):
            return (2, 0)
        return (1, -max((p.ttl or 0) for p in seen[i]))

    order = sorted(seen, key=rank)
    names = [p.name for p in points]
    parts = [f"{names[i]} ({_how(seen[i])})" if _how(seen[i]) else names[i] for i in order]
    missing = [i for i in range(len(points)) if i not in seen]
    server_point = next((i for i in missing if owns(i, servers)), None)
    last = order[-1]
    text = "the SYN was seen at " + ", ".join(parts)
    text += "".join(f"; not at {names[i]}" for i in missing)
    host = ", ".join(sorted(servers))
    if owns(last, servers):
        text += f": it reached {names[last]}, the capture on {host} itself, and was not answered there"
    elif server_point is not None:
        text += (f": lost between {names[last]} and {names[server_point]} (the capture on {host} itself, "
                 "which never saw it)")
    else:
        text += f": last seen at {names[last]}" + (", which forwarded it" if _how(seen[last]) == "forwarded" else "")
    return replace(e, sentence=f"{e.sentence} Across the capture points, {text}.")


def _how(sightings: list[Packet]) -> str:
    """`leaving`, `forwarded`, `arriving`, or '' where the capture recorded no direction."""
    dirs = {p.direction for p in sightings}
    ins = [p.time for p in sightings if p.direction == "in"]
    if any(p.direction == "out" and any(0 <= p.time - t <= COPY_WINDOW for t in ins) for p in sightings):
        return "forwarded"
    if "out" in dirs:
        return "leaving"
    return "arriving" if "in" in dirs else ""
