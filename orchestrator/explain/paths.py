"""Where each RST entered the path, from several capture points of one connection.

`explain a.pcap b.pcap …` matches each connection across the files
(`correlate`), places the points along its path (the end hosts' own captures
at the ends, the others by the TTL of the client's packets: the nearer the
client, the higher), and follows each RST from the end whose name it carries:

* it left a point's host (outgoing, not forwarded): that host made it. The
  claimed sender's own host sent it (genuine), or a host that forwards the
  connection's other packets or does not own that address forged it;
* it is absent from the claimed sender's own capture, which holds the
  connection (or is known to be that host's): it was made on the path,
  before the first point that saw it;
* otherwise the points cannot tell, and that is said.

Points are ordered by the path, never by comparing timestamps of different
files (their clocks may differ). Pure: packets in, dataclasses out.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from ..capture import Packet
from .correlate import Group, Hosting, Node, Point, SegmentKey, by_point, copies_apart, correlate, end_of, segment_key
from .facts import Facts
from .result import endpoint

__all__ = ["ARRIVED", "FORWARDED", "LEFT", "SEEN", "PathConnection", "Paths", "Point", "RstPath", "Sighting",
           "on_path", "point_names", "rst_paths"]

LEFT, FORWARDED, ARRIVED, SEEN = "leaving", "forwarded", "arriving", "seen"

RstKey = tuple[str | None, SegmentKey]


@dataclass(frozen=True, slots=True)
class Sighting:
    """One point's sighting of a RST."""

    point: str
    how: str              # LEFT (made by the capture host), FORWARDED, ARRIVED or SEEN (no direction recorded)
    packet: Packet        # as that point saw it first (its index is that file's)
    translated: bool      # the point saw it with two sets of addresses (NAT on that host)

    def text(self) -> str:
        how = [self.how] if self.how != SEEN else []
        return self.point + (f" ({', '.join(how + ['translated'] * self.translated)})"
                             if how or self.translated else "")


@dataclass(frozen=True, slots=True)
class RstPath:
    """One RST followed along its connection's path."""

    claimed: str                   # the sender it names, as its own end saw it ("addr:port")
    side: str | None               # "client", "server" or None
    seen: tuple[Sighting, ...]     # from the claimed sender's end onwards
    not_seen: tuple[str, ...]      # points on the path that hold the connection (or are its ends) without it
    entered: str                   # where it entered the path: a point, "between A and B", or "" (unknown)
    forged: bool | None            # True: made on the path; False: its claimed sender sent it; None: unknown
    why: str                       # what the points show about its origin
    verdict: str                   # the one sentence: where it was seen and not, and why

    @property
    def first_seen(self) -> str | None:
        """The point nearest its claimed sender that saw it."""
        return self.seen[0].point if self.seen else None

    def as_dict(self) -> dict[str, Any]:
        return {"claimed_sender": self.claimed, "side": self.side,
                "seen_at": [{"point": s.point, "how": s.how, "translated": s.translated,
                             "packet": s.packet.index} for s in self.seen],
                "not_seen_at": list(self.not_seen), "first_seen": self.first_seen, "entered": self.entered,
                "forged": self.forged, "why": self.why, "verdict": self.verdict}


@dataclass(frozen=True, slots=True)
class PathConnection:
    """One connection matched across capture points."""

    points: tuple[str, ...]        # the points that hold it, the client's end first
    legs: tuple[str, ...]          # "point: a > b" for each point's view (two at a NAT)
    translated: bool               # addresses differ between points (NAT on the path)
    resets: tuple[RstPath, ...]


@dataclass(frozen=True, slots=True)
class Paths:
    """Every matched connection, and each point's RSTs (by packet index) with their path."""

    connections: tuple[PathConnection, ...]
    by_point: tuple[Mapping[int, RstPath], ...]

    @property
    def matched(self) -> int:
        """Connections that two or more points hold."""
        return sum(1 for c in self.connections if len(c.points) > 1)


def point_names(files: Sequence[str]) -> list[str]:
    """Each file's capture point name: its name without folder and extension (`captures/x/client.pcap`
    -> `client`), or the whole path where two files would share one."""
    stems = [PurePath(f).name.split(".")[0] or f for f in files]
    return [s if stems.count(s) == 1 else f for s, f in zip(stems, files, strict=True)]


def rst_paths(points: Sequence[Point], hosts: Sequence[Hosting] | None = None) -> Paths:
    """Follow every RST of the connections the points share (see the module docstring); `hosts`: see
    `correlate`."""
    groups, hosts = correlate(points, hosts)
    names = [p.name for p in points]
    found: list[PathConnection] = []
    per_point: list[dict[int, RstPath]] = [{} for _ in points]
    resets_of: dict[int, dict[SegmentKey, list[Packet]]] = {}    # id(connection) -> its RSTs by segment key
    for g in groups:
        view = _View(g, points, hosts)
        if len(view.order) < 2:
            continue
        resets: list[RstPath] = []
        for key, passage in view.passages():
            path = view.follow(key, passage)
            resets.append(path)
            for i, cluster in passage.items():
                for p, n in cluster:
                    per_point[i][p.index] = path
                    same = resets_of.get(id(n.conn))
                    if same is None:          # once a connection: a flood's RSTs are not each a scan of it
                        same = resets_of[id(n.conn)] = {}
                        for q in n.conn.raw:
                            if q.is_rst:
                                same.setdefault(segment_key(q), []).append(q)
                    for q in same.get(segment_key(p), ()):     # the forwarded copy the connection folded away
                        if not copies_apart(p, q):
                            per_point[i].setdefault(q.index, path)
        legs = tuple(f"{names[n.point]}: {endpoint(*_first_end(n, 'client'))} > "
                     f"{endpoint(*_first_end(n, 'server'))}" for n in sorted(g.nodes, key=view.rank_node))
        found.append(PathConnection(tuple(names[i] for i in view.order if i in view.legs), legs,
                                    g.translated, tuple(resets)))
    return Paths(tuple(found), tuple(per_point))


def _copies(a: tuple[Packet, Node], b: tuple[Packet, Node]) -> bool:
    """Two sightings at one point are the in and out copies of one RST: close together, and on two
    legs (NAT), in two directions, on two interfaces or with the TTL the forwarding took off."""
    (p, n), (q, m) = a, b
    return not copies_apart(p, q) and (n is not m or p.direction != q.direction or p.ifindex != q.ifindex
                                       or p.ttl != q.ttl)


def _first_end(node: Node, role: str) -> tuple[str, int]:
    end = end_of(node, role)
    if end is not None:
        return end
    p = node.conn.pk[0]
    return (p.src, p.sport) if role == "client" else (p.dst, p.dport)


Cluster = list[tuple[Packet, Node]]


class _View:
    """One group seen from its capture points: their order along the path and their RSTs."""

    def __init__(self, g: Group, points: Sequence[Point], hosts: Sequence[Hosting]) -> None:
        self.g = g
        self.names = [p.name for p in points]
        self.legs = by_point(g)
        self.given = [p.addresses for p in points]
        self.hosts = hosts
        self.ends = {role: {end_of(n, role) for n in g.nodes} - {None} for role in ("client", "server")}
        # what `_at` and `_forwards` found, per point (and role): each scans the connections' packets, and every
        # RST of the group asks again (a flood's thousands)
        self._at_known: dict[tuple[int, str | None], bool] = {}
        self._forwards_known: dict[int, bool] = {}
        placed = [i for i in range(len(points)) if i not in self.legs and
                  any(self._at(i, role) for role in ("client", "server"))]
        self.order = sorted([*self.legs, *placed], key=self._rank)

    def rank_node(self, node: Node) -> tuple[int, float, float]:
        return self._rank(node.point)

    def _rank(self, i: int) -> tuple[int, float, float]:
        if self._at(i, "client"):
            return (0, 0.0, 0.0)
        if self._at(i, "server"):
            return (2, 0.0, 0.0)
        return (1, -self._ttl(i, "client"), self._ttl(i, "server"))

    def _ttl(self, i: int, role: str) -> float:
        ttls = [p.ttl for n in self.legs.get(i, ()) for p in n.conn.pk
                if p.ttl is not None and not p.is_rst and n.roles.get((p.src, p.sport)) == role]
        return float(max(ttls)) if ttls else 0.0

    def _at(self, i: int, role: str | None) -> bool:
        """Point i is the capture of the host at the `role` end: it owns that end's address there."""
        if role is None:
            return False
        known = self._at_known.get((i, role))
        if known is None:
            if i in self.legs:
                known = any(self._sends_as(i, n, role) for n in self.legs[i])
            else:
                known = any(e is not None and e[0] in self.given[i] for e in self.ends[role])
            self._at_known[(i, role)] = known
        return known

    def _forwards(self, i: int) -> bool:
        """Point i's host forwarded packets of the group's connections."""
        known = self._forwards_known.get(i)
        if known is None:
            known = self._forwards_known[i] = any(
                n.conn.forwarded or any(p.index in self.hosts[i].forwarded for p in n.conn.raw)
                for n in self.legs.get(i, ()))
        return known

    def _sends_as(self, i: int, n: Node, role: str) -> bool:
        """Point i's host is the leg's `role` end: it owns the address and forwarded none of its packets."""
        end = end_of(n, role)
        host = self.hosts[i]
        return (end is not None and end[0] in host.own and
                not any(p.index in host.forwarded for p in n.conn.raw if (p.src, p.sport) == end))

    def passages(self) -> list[tuple[RstKey, dict[int, Cluster]]]:
        """Each RST once, with every point's sighting of it: the k-th passage of a RST at one point is
        the k-th at another (the in and out copies at a NAT, one file, are one passage)."""
        clusters: dict[RstKey, dict[int, list[Cluster]]] = defaultdict(lambda: defaultdict(list))
        first_at: dict[RstKey, tuple[int, int]] = {}
        for i, nodes in self.legs.items():
            rsts = sorted(((p, n) for n in nodes for p in n.conn.pk if p.is_rst), key=lambda pn: pn[0].index)
            for p, n in rsts:
                key: RstKey = (n.roles.get((p.src, p.sport)), segment_key(p))
                mine = clusters[key][i]
                last = mine[-1] if mine else None
                if last is not None and _copies(last[-1], (p, n)):
                    last.append((p, n))
                else:
                    mine.append([(p, n)])
                first_at.setdefault(key, (self.order.index(i), p.index))
        out: list[tuple[RstKey, dict[int, Cluster]]] = []
        for key in sorted(clusters, key=lambda k: first_at[k]):
            at = clusters[key]
            for k in range(max(len(c) for c in at.values())):
                out.append((key, {i: c[k] for i, c in at.items() if k < len(c)}))
        return out

    def _how(self, cluster: Cluster) -> str:
        dirs = {p.direction for p, _ in cluster}
        fwd = self.hosts[cluster[0][1].point].forwarded
        if any(p.index in n.conn.forwarded or p.index in fwd for p, n in cluster) or {"in", "out"} <= dirs:
            return FORWARDED
        if "out" in dirs:
            return LEFT
        return ARRIVED if dirs & {"in", "other"} else SEEN

    def follow(self, key: RstKey, passage: dict[int, Cluster]) -> RstPath:
        """The verdict on one RST's origin."""
        side = key[0]
        order = list(reversed(self.order)) if side == "server" else list(self.order)
        seen = [Sighting(self.names[i], self._how(passage[i]), passage[i][0][0],
                         len({(p.src, p.sport, p.dst, p.dport) for p, _ in passage[i]}) > 1)
                for i in order if i in passage]
        at_x = [i for i in order if self._at(i, side)]
        nearest = next(i for i in order if i in passage)
        p = passage[nearest][0][0]
        claimed = endpoint(p.src, p.sport)
        if side is not None:
            own_end = next((end_of(n, side) for i in at_x for n in self.legs.get(i, ())), None)
            claimed = endpoint(*own_end) if own_end is not None else claimed
        not_seen = [i for i in order if i not in passage]
        made = [i for i in order if i in passage and self._how(passage[i]) == LEFT]
        host = claimed.rpartition(":")[0].strip("[]") if side is not None else p.src
        forged: bool | None
        if made:
            entered, forged, why = self._made_at(made[0], side, passage, host)
        elif absent := [i for i in at_x if i not in passage]:
            i, first = absent[0], self.names[nearest]
            holds = "holds the connection's other packets" if i in self.legs else "holds no packet of it"
            entered, forged = f"between {self.names[i]} and {first}", True
            why = (f"it is not in {self.names[i]}, the capture on {host} itself, which {holds}: made on the "
                   f"path between {self.names[i]} and {first}, in {host}'s name")
        elif at_x:
            entered, forged = self.names[at_x[0]], False
            why = f"{self.names[at_x[0]]}, the capture on {host} itself, has it: {host} sent it"
        else:
            entered, forged = "", None
            why = f"no capture point is on {host} itself, so where it entered the path is not known"
        saw = "seen at " + ", ".join(s.text() for s in seen)
        missing = "".join(f"; not at {self.names[i]}" + ("" if i in self.legs else
                                                        " (it holds no packet of this connection)")
                          for i in not_seen)
        return RstPath(claimed, side, tuple(seen), tuple(self.names[i] for i in not_seen), entered, forged,
                       why, f"RST in {claimed}'s name {saw}{missing}: {why}")

    def _made_at(self, i: int, side: str | None, passage: dict[int, Cluster],
                 host: str) -> tuple[str, bool | None, str]:
        name = self.names[i]
        addr = passage[i][0][0].src
        own, transit = self.hosts[i].own, self.hosts[i].transit
        if self._at(i, side) or (side is None and addr in own):
            return name, False, f"it left {name}'s host, {host} itself, not forwarded: {host}'s own TCP sent it"
        forwards = self._forwards(i) or addr in transit
        if forwards:
            return name, True, (f"it left {name}'s host, which forwards the connection's other packets, in "
                                f"{host}'s name: forged by {name}")
        if own and addr not in own:
            return name, True, (f"it left {name}'s host ({', '.join(sorted(own))}), not {host}: "
                                f"forged by {name}")
        return name, None, (f"it left {name}'s host, which is {host} itself or a firewall in its name (the "
                            f"address of {name}'s host, --at FILE=ADDRESS, tells which)")


def on_path(f: Facts, path: RstPath) -> None:
    """What the capture points show about a RST's origin decides over what one point's IP header suggests."""
    if path.forged is True:
        f.forged = [f"across the capture points, {path.why}", *f.forged]
        f.by_endpoint = ""
    elif path.forged is False:
        f.forged = []
        f.by_endpoint = f"across the capture points, {path.why}"
