"""What `explain` returns: plain frozen dataclasses, ready for the console, HTML or JSON.

Rendering lives in `orchestrator.report`; nothing here prints.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..capture import Packet

if TYPE_CHECKING:
    from .paths import RstPath
    from .store import Explanations

__all__ = ["AMBIGUOUS", "HALF_OPEN", "SILENT_DROP", "UNKNOWN", "Candidate", "CaptureExplanation", "Evidence",
           "Explanation", "endpoint", "host_of", "port_of"]

AMBIGUOUS = "ambiguous"
UNKNOWN = "unknown"
SILENT_DROP = "silent-drop"
HALF_OPEN = "half-open"       # SYN/ACKs the client never answered: nothing reset, nothing failed on the wire


def endpoint(addr: str, port: int) -> str:
    """`10.0.0.1:80`, `[fd00::1]:80`."""
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


def host_of(ep: str) -> str:
    """The address of `10.0.0.1:80` or `[fd00::1]:80` (what `endpoint` wrote)."""
    return ep.rsplit(":", 1)[0].strip("[]")


def port_of(ep: str) -> int:
    return int(ep.rsplit(":", 1)[1])


@dataclass(frozen=True, slots=True)
class Evidence:
    """One deciding packet: its tcpdump-like line and what it shows."""

    packet: Packet
    line: str
    why: str


@dataclass(frozen=True, slots=True)
class Candidate:
    """A cause the capture fits, what fits it, and what would confirm or rule it out."""

    cause: str
    why: str
    tell: str


@dataclass(frozen=True, slots=True)
class Explanation:
    """The verdict for one connection."""

    cause: str                        # a cause id, AMBIGUOUS, UNKNOWN or SILENT_DROP
    sentence: str                     # one sentence a developer understands
    client: str | None                # "addr:port" of the side that sent the SYN, if seen
    server: str | None
    endpoints: tuple[str, str]        # client first when known
    rst_from: str | None              # "addr:port" of the first RST's sender
    rst_side: str | None              # "client", "server" or None (roles unknown)
    candidates: tuple[Candidate, ...]  # one for a decided cause, several when ambiguous
    evidence: tuple[Evidence, ...]
    notes: tuple[str, ...]
    start: float                      # time of the connection's first packet (epoch s)
    rst_time: float | None
    packets: int                      # packets of the connection (copies not counted)
    resets: int                       # RSTs in the connection
    conn_state: str = ""              # Zeek's conn_state (S0, REJ, RSTO, ...)
    history: str = ""                 # Zeek's history string ("ShADadR", ...)
    forged: tuple[str, ...] = field(default=())  # IP-level evidence that the RST was forged
    path: RstPath | None = None       # the first RST followed across capture points (several files)
    segments: tuple[Packet, ...] = field(default=(), repr=False, compare=False)  # the connection's packets

    def as_dict(self, t0: float = 0.0) -> dict[str, Any]:
        """A JSON-ready mapping; times in seconds relative to `t0`. An evidence entry's
        `packet` is the packet's position among the file's TCP packets (0-based)."""
        out: dict[str, Any] = {
            "client": self.client, "server": self.server, "endpoints": list(self.endpoints),
            "cause": self.cause,
            "candidates": [{"cause": c.cause, "why": c.why, "tell": c.tell} for c in self.candidates],
            "rst_from": self.rst_from, "rst_side": self.rst_side,
            "explanation": self.sentence,
            "evidence": [{"packet": e.packet.index, "time": round(e.packet.time - t0, 6),
                          "line": e.line, "why": e.why} for e in self.evidence],
            "notes": list(self.notes),
            "start": round(self.start - t0, 6),
            "rst_time": None if self.rst_time is None else round(self.rst_time - t0, 6),
            "packets": self.packets, "resets": self.resets,
            "conn_state": self.conn_state, "history": self.history,
            "forged": list(self.forged),
        }
        if self.path is not None:
            out["path"] = self.path.as_dict()
        return out


@dataclass(frozen=True, slots=True)
class CaptureExplanation:
    """Every explained connection of one capture."""

    path: str
    packets: int                      # TCP packets in the file
    other: int                        # frames that were not TCP
    truncated: bool                   # the file ended mid-record: read up to the cut
    connections: int                  # TCP connections in the file
    t0: float                         # time of the first packet (0.0 if none)
    explanations: Sequence[Explanation]   # a tuple, or (a file's) `store.Explanations`, read back in order
    notes: tuple[str, ...] = ()       # what kind of capture it is: one-sided, duplicates, time order

    @property
    def failed(self) -> int:
        """Connections reset (a RST) or failed (a SYN never answered); not those explained without either
        (an out-of-window segment that drew an ACK and kept the connection: conntrack-invalid-liberal; a
        handshake the client never completed: half-open)."""
        return sum(1 for e in self.explanations if e.resets or e.cause == SILENT_DROP)

    def counts_text(self, number: Callable[[int], str] = str) -> str:
        """`3 reset or failed`, and how many were explained without a reset, if any (`number` formats
        each count: HTML makes it bold)."""
        half_open = sum(1 for e in self.explanations if e.cause == HALF_OPEN)
        others = len(self.explanations) - self.failed - half_open
        return f"{number(self.failed)} reset or failed" + (
            f", {number(half_open)} answered SYN/ACK and never completed" if half_open else "") + (
            f", {number(others)} with an out-of-window segment and no reset" if others else "")

    def as_json(self, chosen: Callable[[Explanation], bool] | None = None) -> list[dict[str, Any]]:
        """The `--json` records of this file: one per explained connection (those `chosen`), each with
        its `id` (its place among the file's connections) and its `incident` (the same verdict between
        the same two hosts: the group's cause, hosts, count, port and time ranges, its most telling
        connection's id)."""
        return list(self.records(chosen))

    def records(self, chosen: Callable[[Explanation], bool] | None = None) -> Iterator[dict[str, Any]]:
        """`as_json`'s records one at a time: a big capture's are written as they are made."""
        from .incidents import incidents
        from .store import Explanations, is_store

        if isinstance(self.explanations, Explanations) and is_store(self.explanations):
            yield from self._gathered_records(self.explanations, chosen)
            return
        ids = {id(e): n for n, e in enumerate(self.explanations)}
        incident_of: dict[int, dict[str, Any]] = {}
        for number, inc in enumerate(incidents(self.explanations)):
            record = inc.as_dict(self.t0, number, ids)
            incident_of.update((id(e), record) for e in inc.connections)
        for n, e in enumerate(self.explanations):
            if chosen is None or chosen(e):
                yield {"file": self.path, "capture_truncated": self.truncated, **e.as_dict(self.t0), "id": n,
                       "incident": incident_of[id(e)]}

    def _gathered_records(self, store: Explanations,
                          chosen: Callable[[Explanation], bool] | None) -> Iterator[dict[str, Any]]:
        """`records` of a store: the incidents from what it gathered, each connection read back once."""
        from .incidents import incidents

        records: dict[int, dict[str, Any]] = {}          # id(group) -> its incident's record
        for number, inc in enumerate(incidents(store)):
            assert inc.gathered is not None
            records[id(inc.gathered)] = inc.as_dict(self.t0, number,
                                                    {id(inc.example): store.position(inc.gathered.example)})
        for pos, n in enumerate(store.order):
            e = store.arrival(n)
            if chosen is None or chosen(e):
                yield {"file": self.path, "capture_truncated": self.truncated, **e.as_dict(self.t0), "id": pos,
                       "incident": records[id(store.group_of(n))]}
