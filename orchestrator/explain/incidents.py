"""Connections with the same verdict between the same two hosts are one incident.

A scan's 1,986 unanswered SYNs or a 1,333-RST flood read as one line with a
count, the ports and the time span; the most telling connection (the one with
the most evidence) stands for the rest.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .result import Explanation, host_of, port_of
from .store import Chosen, Explanations, Group, Members, incident_key, is_store

__all__ = ["SCAN_PORTS", "Incident", "host_of", "incidents", "involves", "port_of"]

SCAN_PORTS = 20           # one client trying this many ports of one server is scanning it


@dataclass(frozen=True, slots=True)
class Incident:
    """One verdict repeated between two hosts."""

    cause: str
    candidates: tuple[str, ...]       # for an ambiguous verdict
    client: str                       # host (address) that opened the connections
    server: str
    example: Explanation              # the most telling connection
    connections: Sequence[Explanation]
    gathered: Group | None = None     # its aggregates, gathered as the explanations came (a big capture's)

    @property
    def count(self) -> int:
        return len(self.connections)

    def ports(self) -> tuple[int, int]:
        """The lowest and highest server port."""
        if self.gathered is not None:
            return self.gathered.low_port, self.gathered.high_port
        ports = [port_of(e.endpoints[1]) for e in self.connections]
        return min(ports), max(ports)

    def meaning(self) -> str:
        """What the group means, when its shape says it ('' otherwise)."""
        ports = self.gathered.ports if self.gathered is not None else {
            port_of(e.endpoints[1]) for e in self.connections}
        if self.cause == "half-open":
            n = len(ports)
            return (f"{n} port{'s' if n > 1 else ''} answered SYN/ACK and never completed (open ports of a "
                    "half-open scan, or a client that vanished)")
        if len(ports) >= SCAN_PORTS:
            return ("a port scan against a host that filters" if self.cause == "silent-drop"
                    else "a port scan")
        return ""

    def span(self) -> tuple[float, float]:
        if self.gathered is not None:
            return self.gathered.first, self.gathered.last
        times = [e.start for e in self.connections]
        return min(times), max(times)

    def as_dict(self, t0: float, number: int, ids: Mapping[int, int]) -> dict[str, Any]:
        """Its `--json` record: `number` is its id in the file, `ids` maps a connection (`id()`) to its id."""
        lo, hi = self.ports()
        first, last = self.span()
        return {"id": number, "cause": self.cause, "candidates": list(self.candidates), "client": self.client,
                "server": self.server, "connections": self.count, "server_ports": [lo, hi],
                "first": round(first - t0, 6), "last": round(last - t0, 6), "meaning": self.meaning(),
                "example": ids[id(self.example)]}


def incidents(explanations: Sequence[Explanation]) -> list[Incident]:
    """Group explanations by verdict and host pair, in order of each group's first connection."""
    if isinstance(explanations, Explanations) and is_store(explanations):
        return _gathered(explanations, explanations.groups.values())
    if isinstance(explanations, Chosen):
        return _gathered(explanations.store, explanations.groups.values())
    groups: dict[tuple[str, tuple[str, ...], str, str], list[Explanation]] = {}
    for e in explanations:
        groups.setdefault(incident_key(e), []).append(e)
    out = []
    for (cause, cands, client, server), members in groups.items():
        example = max(members, key=lambda e: (len(e.evidence), -e.start))
        out.append(Incident(cause, cands, client, server, example, tuple(members)))
    return out


def _gathered(store: Explanations, groups: Iterable[Group]) -> list[Incident]:
    """The incidents gathered as a store's explanations came (or a selection's of them): nothing is read back
    but the examples not held."""
    out = []
    for group in sorted(groups, key=lambda g: g.first_key):
        cause, cands, client, server = group.key
        example = group.held if group.held is not None else store.arrival(group.example)
        out.append(Incident(cause, cands, client, server, example, Members(store, group), group))
    return out


def involves(e: Explanation, conn: str | None = None, host: str | None = None) -> bool:
    """The connection has `conn` (`addr:port`, as `endpoint` writes it) at either end, and `host` at either end."""
    return ((conn is None or conn in e.endpoints)
            and (host is None or host in (host_of(e.endpoints[0]), host_of(e.endpoints[1]))))
