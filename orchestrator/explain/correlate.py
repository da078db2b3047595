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

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ..capture import Packet
from .facts import COPY_WINDOW, Addr, Connection, connections

__all__ = ["Group", "Hosting", "Node", "Point", "SegmentKey", "correlate", "segment_key"]

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


def segment_key(p: Packet) -> SegmentKey:
    """What identifies a segment at every point of its path (NAT leaves these alone)."""
    return (p.seq, p.ack if p.has_ack else 0, p.bits & _CORE_FLAGS, p.length)


@dataclass(slots=True)
class Hosting:
    """What one capture host did: the addresses it sent from, those it forwarded, the packets it forwarded."""

    own: set[str] = field(default_factory=set)
    transit: set[str] = field(default_factory=set)
    forwarded: set[int] = field(default_factory=set)     # packet indexes, the incoming and outgoing copy


def hosting(point: Point) -> Hosting:
    """A segment that came in and left again within COPY_WINDOW (its addresses rewritten or not) was
    forwarded; an outgoing one that did not come in first was sent by the capture host itself."""
    out = Hosting(own=set(point.addresses))
    came_in: dict[SegmentKey, Packet] = {}
    for p in point.packets:
        key = segment_key(p)
        if p.direction == "in":
            came_in[key] = p
        elif p.direction == "out":
            q = came_in.get(key)
            if q is not None and not copies_apart(q, p):
                out.forwarded.update((q.index, p.index))
                out.transit.update((q.src, q.dst, p.src, p.dst))
            elif not p.is_rst:
                out.own.add(p.src)
    out.own -= out.transit - set(point.addresses)
    return out


def correlate(points: Sequence[Point]) -> tuple[list[Group], list[Hosting]]:
    """Every connection that two or more legs hold (two points, or one point's two NAT sides) or
    that holds a RST, and what each point's host did (its own and forwarded addresses)."""
    nodes: list[Node] = []
    hosts: list[Hosting] = []
    for i, point in enumerate(points):
        for c in connections(point.packets):
            c.prepare()
            nodes.append(Node(i, c))
        hosts.append(hosting(point))
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
    out = [g for g in groups.values() if len(g.nodes) > 1 or g.nodes[0].conn.first_rst is not None]
    for g in out:
        _roles(g)
    return out, hosts


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
