"""Connections with the same verdict between the same two hosts are one incident.

A scan's 1,986 unanswered SYNs or a 1,333-RST flood read as one line with a
count, the ports and the time span; the most telling connection (the one with
the most evidence) stands for the rest.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .result import Explanation

__all__ = ["SCAN_PORTS", "Incident", "incidents"]

SCAN_PORTS = 20           # one client trying this many ports of one server is scanning it


def _host(ep: str) -> str:
    return ep.rsplit(":", 1)[0]


def _port(ep: str) -> int:
    return int(ep.rsplit(":", 1)[1])


@dataclass(frozen=True, slots=True)
class Incident:
    """One verdict repeated between two hosts."""

    cause: str
    candidates: tuple[str, ...]       # for an ambiguous verdict
    client: str                       # host (address) that opened the connections
    server: str
    example: Explanation              # the most telling connection
    connections: tuple[Explanation, ...]

    @property
    def count(self) -> int:
        return len(self.connections)

    def ports(self) -> tuple[int, int]:
        """The lowest and highest server port."""
        ports = [_port(e.endpoints[1]) for e in self.connections]
        return min(ports), max(ports)

    def meaning(self) -> str:
        """What the group means, when its shape says it ('' otherwise)."""
        ports = {_port(e.endpoints[1]) for e in self.connections}
        if len(ports) >= SCAN_PORTS:
            return ("a port scan against a host that filters" if self.cause == "silent-drop"
                    else "a port scan")
        return ""

    def span(self) -> tuple[float, float]:
        times = [e.start for e in self.connections]
        return min(times), max(times)

    def as_dict(self, t0: float = 0.0) -> dict[str, Any]:
        lo, hi = self.ports()
        first, last = self.span()
        return {"cause": self.cause, "candidates": list(self.candidates), "client": self.client,
                "server": self.server, "connections": self.count, "server_ports": [lo, hi],
                "first": round(first - t0, 6), "last": round(last - t0, 6), "meaning": self.meaning(),
                "example": self.example.as_dict(t0)}


def incidents(explanations: Sequence[Explanation]) -> list[Incident]:
    """Group explanations by verdict and host pair, in order of each group's first connection."""
    groups: dict[tuple[str, tuple[str, ...], str, str], list[Explanation]] = {}
    for e in explanations:
        cands = tuple(c.cause for c in e.candidates) if len(e.candidates) > 1 else ()
        key = (e.cause, cands, _host(e.endpoints[0]), _host(e.endpoints[1]))
        groups.setdefault(key, []).append(e)
    out = []
    for (cause, cands, client, server), members in groups.items():
        example = max(members, key=lambda e: (len(e.evidence), -e.start))
        out.append(Incident(cause, cands, client, server, example, tuple(members)))
    return out
