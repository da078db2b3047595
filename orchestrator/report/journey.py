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
NAT_WINDOW = 0.005  # seconds: a segment leaves a NAT this soon after it came in
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
    translated_at: str | None = None   # the point where its addresses or ports were rewritten (NAT)

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


def _same_segment(a: Mapping[str, Any], b: Mapping[str, Any], translated: bool = False) -> bool:
    """The same segment at two points; `translated`: addresses or ports may differ (NAT on the way)."""
    keys = ("flags", "len") if translated else ("src", "dst", "sport", "dport", "flags", "len")
    if any(a.get(k) != b.get(k) for k in keys):
        return False
    if a.get("relative") == b.get("relative"):      # both relative to the same ISN, or both raw
        return a.get("seq") == b.get("seq") and a.get("ack") == b.get("ack")
    return not translated


_Open = tuple[list[Mapping[str, Any]], list[Sighting]]     # a journey being matched: its forms and its sightings


def _keys(p: Mapping[str, Any]) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """(the exact key, the key a sighting numbered the other way, relative vs raw, looks it up by)."""
    base = (p.get("src"), p.get("dst"), p.get("sport"), p.get("dport"), p.get("flags"), p.get("len"))
    return (*base, bool(p.get("relative")), p.get("seq"), p.get("ack")), (*base, bool(p.get("relative")))


def _nat_key(point: str, p: Mapping[str, Any]) -> tuple[Any, ...]:
    return (point, p.get("flags"), p.get("len"), bool(p.get("relative")), p.get("seq"), p.get("ack"))


def match_journeys(packets: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[Journey]:
    """Every segment of every capture point, matched across points into journeys, in order of first sighting.

    A segment is the same where its addresses, ports, flags, numbers and length
    agree and it was seen within WINDOW of its previous sighting, at a point
    (and direction) it was not seen at before. A segment that went into a point
    and left it with other addresses or ports (NAT) but the same flags, numbers
    and length within NAT_WINDOW is the same segment, translated there. Open
    journeys are indexed by key, so matching stays linear in the records.
    """
    sightings = sorted(((float(p["t"]), point, i, p) for point, records in packets.items()
                        for i, p in enumerate(records)), key=lambda s: (s[0], s[1], s[2]))
    every: list[_Open] = []
    exact: dict[tuple[Any, ...], list[_Open]] = {}
    other_numbering: dict[tuple[Any, ...], list[_Open]] = {}
    nat: dict[tuple[Any, ...], list[_Open]] = {}
    translated_at: dict[int, str] = {}
    # per journey (by id of its sightings' list, kept alive in `every`): the (point, direction) pairs it was seen
    # at, and the index entries it has (one each: a journey seen again under the same key is not listed twice, so
    # a burst of one segment repeated, a RST loop, costs its live copies once each)
    marks: dict[int, set[tuple[str, str | None]]] = {}
    listed: set[tuple[int, int, tuple[Any, ...]]] = set()

    def live(index: dict[tuple[Any, ...], list[_Open]], key: tuple[Any, ...], t: float, window: float) -> list[_Open]:
        found = [j for j in index.get(key, ()) if t - j[1][-1].t < window]
        if found:
            index[key] = found
        else:
            index.pop(key, None)
        return found

    def enlist(index: dict[tuple[Any, ...], list[_Open]], key: tuple[Any, ...], j: _Open) -> None:
        entry = (id(index), id(j[1]), key)
        if entry not in listed:
            listed.add(entry)
            index.setdefault(key, []).append(j)

    def register(j: _Open) -> None:
        form, last = j[0][-1], j[1][-1]
        key, coarse = _keys(form)
        enlist(exact, key, j)
        enlist(other_numbering, coarse, j)
        if last.direction == "in":
            nat.setdefault(_nat_key(last.point, form), []).append(j)

    for t, point, i, p in sightings:
        direction = p.get("dir")
        seen = Sighting(point, i, t, direction)
        key, coarse = _keys(p)
        flipped = (*coarse[:-1], not coarse[-1])
        candidates = live(exact, key, t, WINDOW) + live(other_numbering, flipped, t, WINDOW)
        best: _Open | None = None
        best_gap = WINDOW
        for forms, path in candidates:
            gap = t - path[-1].t
            if -EARLY <= gap < best_gap and (
                    all(at != point for at, _ in marks[id(path)]) if direction is None
                    else (point, direction) not in marks[id(path)]
            ) and _same_segment(forms[-1], p):
                best, best_gap = (forms, path), abs(gap)
        if best is None and direction == "out":
            for forms, path in live(nat, _nat_key(point, p), t, NAT_WINDOW):   # in here, out with other addresses
                last = path[-1]
                if (last.point == point and last.direction == "in" and t - last.t >= 0
                        and _same_segment(forms[-1], p, translated=True) and forms[-1] != p
                        and (point, "out") not in marks[id(path)]):
                    best = (forms, path)
                    translated_at[id(path)] = point
                    break
        if best is None:
            best = ([p], [seen])
            every.append(best)
            marks[id(best[1])] = set()
        else:
            best[0].append(p)
            best[1].append(seen)
        marks[id(best[1])].add((point, direction))
        register(best)
    return [_journey(forms, path, set(packets), translated_at.get(id(path))) for forms, path in every]


def _journey(forms: list[Mapping[str, Any]], path: list[Sighting], points: set[str],
             translated_at: str | None) -> Journey:
    """Where the arrow starts and stops: at the source and destination hosts unless their captures say otherwise."""
    p = forms[0]
    src, dst = str(p["src"]), str(forms[-1]["dst"])          # after NAT the destination is the translated one
    seen_at = [s.point for s in path]
    sent = src not in points or any(s.point == src and s.direction != "in" for s in path)
    arrived = dst not in points or any(s.point == dst and s.direction != "out" for s in path)
    start = src if sent else seen_at[0]
    stop = dst if arrived else seen_at[-1]
    return Journey(p, tuple(path), start, stop, forged=not sent, stopped=not arrived, translated_at=translated_at)
