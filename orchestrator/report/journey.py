"""Each packet's journey across the capture points: where it was first seen, where last, where it stopped.

All capture points of a run share the kernel's clock, so a segment seen at the
client (out), the router (in, then out when forwarded) and the server (in) is
one segment at four timestamps microseconds apart. Matching the points' packet
records (result.json) gives each segment's path: a SYN the router consumed
stops at the router; a RST forged by the router starts there; a segment
blackholed on the path ends where it was last seen. Pure: records in, journeys
out.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

WINDOW = 0.05       # seconds: two sightings of one segment at neighbouring points are closer than this
EARLY = 0.001       # a sighting may precede the previous one by this much (separate capture sockets)

HOST_ORDER = ("client", "router", "server", "winhost")   # the lab's path, left to right


@dataclass(frozen=True)
class Sighting:
    """One capture point's record of the segment."""

    point: str
    index: int            # 0-based in that point's packet list
    t: float
    direction: str | None


@dataclass(frozen=True)
class Journey:
    """One segment on the wire and every capture point that saw it, in time order."""

    packet: Mapping[str, Any]          # the first sighting's record (flags, seq, ack, len, ports, src, dst)
    sightings: tuple[Sighting, ...]
    start: str                         # the lifeline the arrow starts on
    stop: str                          # the lifeline it ends on
    forged: bool                       # its source host's capture never saw it leave: made on the path
    stopped: bool                      # its destination's capture never saw it arrive: it ended on the path

    @property
    def t(self) -> float:
        return self.sightings[0].t

    @property
    def points(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s.point for s in self.sightings))

    @property
    def key(self) -> tuple[Any, ...]:
        p = self.packet
        return (p["src"], p["dst"], p["sport"], p["dport"], p["flags"], p.get("seq"), p.get("len"))


def lifelines(hosts: Sequence[str]) -> list[str]:
    """The hosts in path order: client, router, server, winhost, then any others."""
    known = [h for h in HOST_ORDER if h in hosts]
    return known + [h for h in hosts if h not in known]


def _same_segment(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    if any(a.get(k) != b.get(k) for k in ("src", "dst", "sport", "dport", "flags", "len")):
        return False
    if a.get("relative") == b.get("relative"):      # both relative to the same ISN, or both raw
        return a.get("seq") == b.get("seq") and a.get("ack") == b.get("ack")
    return True


def match_journeys(packets: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[Journey]:
    """Every segment of every capture point, matched across points into journeys, in order of first sighting."""
    sightings = sorted(((float(p["t"]), point, i, p) for point, records in packets.items()
                        for i, p in enumerate(records)), key=lambda s: (s[0], s[1], s[2]))
    open_: list[tuple[Mapping[str, Any], list[Sighting]]] = []
    for t, point, i, p in sightings:
        seen = Sighting(point, i, t, p.get("dir"))
        best: list[Sighting] | None = None
        best_gap = WINDOW
        for first, path in open_:
            last = path[-1]
            gap = t - last.t
            if -EARLY <= gap < best_gap and _same_segment(first, p) and not any(
                    s.point == point and (s.direction == seen.direction or seen.direction is None) for s in path):
                best, best_gap = path, abs(gap)
        if best is None:
            open_.append((p, [seen]))
        else:
            best.append(seen)
    return [_journey(first, path, set(packets)) for first, path in open_]


def _journey(p: Mapping[str, Any], path: list[Sighting], points: set[str]) -> Journey:
    """Where the arrow starts and stops: at the source and destination hosts unless their captures say otherwise."""
    src, dst = str(p["src"]), str(p["dst"])
    seen_at = [s.point for s in path]
    sent = src not in points or any(s.point == src and s.direction != "in" for s in path)
    arrived = dst not in points or any(s.point == dst and s.direction != "out" for s in path)
    start = src if sent else seen_at[0]
    stop = dst if arrived else seen_at[-1]
    return Journey(p, tuple(path), start, stop, forged=not sent, stopped=not arrived)
