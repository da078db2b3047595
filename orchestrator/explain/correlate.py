"""One connection seen at several capture points: match the points' connections by their segments.

Two captures hold the same connection when they hold the same segment: the
same sequence number, acknowledgment, flags and payload length (32-bit values
a stack chose at random, so a match is no coincidence). NAT rewrites
addresses and ports but not sequence numbers, so a segment seen with other
addresses at another point (or at a router's two sides) joins the two views
when one end (address and port) is the same in both: the end NAT left alone.
A segment that several connections of one capture share (a scanner's fixed
sequence number) joins nothing.

Nothing here compares timestamps of different files: their clocks may differ.
Within one file, time only folds the two sightings a router makes of one
segment (in, then out). Pure: packets in, groups out.
"""
from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Container, Iterable, Mapping, Sequence, Set
from dataclasses import dataclass, field

from ..capture import FLAG_BITS, Packet
from .facts import COPY_WINDOW, Addr, Connection, connections

__all__ = ["Group", "Hosting", "Node", "Point", "SegmentKey", "correlate", "hosting", "hosting_of", "segment_key"]

SegmentKey = tuple[int, int, int, int]     # seq, ack (0 without ACK), flags (F S R A), payload length
_CORE_FLAGS = 0x01 | 0x02 | 0x04 | 0x10    # PSH, URG and ECN bits may be changed on the way
MAX_LEGS = 2        # one capture holds a segment in at most two connections: a NAT's two sides


@dataclass(frozen=True, slots=True)
class Point:
    """One capture point: its name, its TCP packets (file order), the addresses its host is known to own."""

    name: str
    packets: Sequence[Packet]
    addresses: frozenset[str] = frozenset()


@dataclass(slots=True)
class Node:
    """One point's connection (one leg: a NAT's two sides are two legs at the router)."""

    point: int
    conn: Connection
    roles: dict[Addr, str] = field(default_factory=dict)     # end -> "client" / "server"

    @property
    def ends(self) -> frozenset[Addr]:
        p = self.conn.pk[0]
        return frozenset(((p.src, p.sport), (p.dst, p.dport)))


@dataclass(slots=True)
class Group:
    """One connection as every point that holds it saw it."""

    nodes: list[Node]
    translated: bool = False            # its addresses differ between points (NAT on the path)

    @property
    def points(self) -> set[int]:
        return {n.point for n in self.nodes}


_CORE_OF: dict[str, int] = {text: bits & _CORE_FLAGS for text, bits in FLAG_BITS.items()}
_WITH_ACK = frozenset(text for text, bits in FLAG_BITS.items() if bits & 0x10)


def segment_key(p: Packet) -> SegmentKey:
    """What identifies a segment at every point of its path (NAT leaves these alone)."""
    flags = p.flags
    return (p.seq, p.ack if flags in _WITH_ACK else 0, _CORE_OF[flags], p.length)


@dataclass(slots=True)
class Hosting:
    """What one capture host did: the addresses it sent from, those it forwarded, the packets it forwarded."""

    own: set[str] = field(default_factory=set)
    transit: set[str] = field(default_factory=set)
    forwarded: set[int] = field(default_factory=set)     # packet indexes, the incoming and outgoing copy


def hosting(point: Point, wanted: Container[SegmentKey] = ()) -> Hosting:
    """A segment that came in and left again within COPY_WINDOW (its addresses rewritten or not) was
    forwarded; an outgoing one that did not come in first was sent by the capture host itself. The
    packets forwarded are kept for the `wanted` segments only (a router's capture forwards them all)."""
    return hosting_of(point.packets, point.addresses, wanted)


def hosting_of(packets: Iterable[Packet], addresses: Set[str], wanted: Container[SegmentKey] = ()) -> Hosting:
    """`hosting` of a point's packets as they are read (every one of the file, in order)."""
    out = Hosting(own=set(addresses))
    came_in: dict[SegmentKey, Packet] = {}
    recent: deque[tuple[float, SegmentKey]] = deque()
    for p in packets:
        if p.direction is None:
            continue                   # no direction recorded (not a Linux cooked capture): nothing to tell
        while recent and p.time - recent[0][0] > COPY_WINDOW:
            _, old = recent.popleft()
            if old in came_in and p.time - came_in[old].time > COPY_WINDOW:
                del came_in[old]
        key = segment_key(p)
        if p.direction == "in":
            came_in[key] = p
            recent.append((p.time, key))
        elif p.direction == "out":
            q = came_in.get(key)
            if q is not None and not copies_apart(q, p):
                out.transit.update((q.src, q.dst, p.src, p.dst))
                if key in wanted:
                    out.forwarded.update((q.index, p.index))
            elif not p.is_rst:
                out.own.add(p.src)
    out.own -= out.transit - set(addresses)
    return out


def correlate(points: Sequence[Point], hosts: Sequence[Hosting] | None = None) -> tuple[list[Group], list[Hosting]]:
    """Every connection that holds a RST, with the other legs of it (at other points, or the other side of
    a NAT at the same point), and what each point's host did (its own and forwarded addresses). Only the
    connections that share a segment with one that holds a RST are looked at closely. `hosts`: what each
    point's host did, found as its file was read (its `packets` then need hold only the connections that
    hold a RST or share a segment with one, each whole)."""
    per_point = [connections(point.packets) for point in points]
    wanted: set[SegmentKey] = {segment_key(p) for conns in per_point for c in conns if c.has_reset for p in c.raw}
    nodes: list[Node] = []
    for i, conns in enumerate(per_point):
        for c in conns:
            if c.has_reset or any(segment_key(p) in wanted for p in c.raw):
                c.prepare()
                nodes.append(Node(i, c))
    if hosts is None:
        hosts = [hosting(point, wanted) for point in points]
    holders: dict[SegmentKey, list[tuple[int, Packet]]] = defaultdict(list)
    for n, node in enumerate(nodes):
        seen: set[SegmentKey] = set()
        for p in node.conn.pk:
            key = segment_key(p)
            if (key[0] == 0 and key[1] == 0) or key in seen:
                continue
            seen.add(key)
            holders[key].append((n, p))
    parent = list(range(len(nodes)))

    def root(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    translated: set[tuple[int, int]] = set()
    for found in holders.values():
        if len(found) < 2 or _crowded(found, nodes):
            continue
        n0, p0 = found[0]
        for n1, p1 in found[1:]:
            same = nodes[n0].ends == nodes[n1].ends
            if same and nodes[n0].point == nodes[n1].point:
                continue                        # a reused four-tuple: two connections, not two views
            if not same and not _one_end_kept(p0, p1):
                continue
            parent[root(n1)] = root(n0)
            if not same:
                translated.add((n0, n1))
    groups: dict[int, Group] = {}
    for n, node in enumerate(nodes):
        groups.setdefault(root(n), Group([])).nodes.append(node)
    for n0, _ in translated:
        groups[root(n0)].translated = True
    out = [g for g in groups.values() if any(n.conn.first_rst is not None for n in g.nodes)]
    for g in out:
        _roles(g)
    return out, list(hosts)


def _crowded(found: list[tuple[int, Packet]], nodes: list[Node]) -> bool:
    """The segment sits in more connections of one capture than NAT explains: a crafted one."""
    per_point: dict[int, int] = defaultdict(int)
    for n, _ in found:
        per_point[nodes[n].point] += 1
    return max(per_point.values()) > MAX_LEGS


def _one_end_kept(a: Packet, b: Packet) -> bool:
    """The two sightings of a segment share its source or its destination (address and port)."""
    return (a.src, a.sport) == (b.src, b.sport) or (a.dst, a.dport) == (b.dst, b.dport)


def _roles(g: Group) -> None:
    """Client and server ends of every leg: from its own SYN, else from a segment another leg places."""
    sender_role: dict[SegmentKey, str] = {}
    for node in g.nodes:
        c = node.conn
        if c.client is not None and c.server is not None:
            node.roles = {c.client: "client", c.server: "server"}
            for p in c.pk:
                sender_role.setdefault(segment_key(p), node.roles[(p.src, p.sport)])
    for node in g.nodes:
        if node.roles:
            continue
        for p in node.conn.pk:
            role = sender_role.get(segment_key(p))
            if role is not None:
                other = "server" if role == "client" else "client"
                node.roles = {(p.src, p.sport): role, (p.dst, p.dport): other}
                break


def end_of(node: Node, role: str) -> Addr | None:
    """The leg's end that plays `role` ("client" or "server"), if known."""
    return next((end for end, r in node.roles.items() if r == role), None)


def copies_apart(a: Packet, b: Packet) -> bool:
    """Two sightings in one file are two passages of a segment, not its in and out copies."""
    return abs(b.time - a.time) > COPY_WINDOW


def by_point(g: Group) -> Mapping[int, list[Node]]:
    """The group's legs per point."""
    out: dict[int, list[Node]] = defaultdict(list)
    for node in g.nodes:
        out[node.point].append(node)
    return out
