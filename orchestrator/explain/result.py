"""What `explain` returns: plain frozen dataclasses, ready for the console, HTML or JSON.

Rendering lives in `orchestrator.report`; nothing here prints.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from json.encoder import encode_basestring_ascii
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
    """The verdict for one connection, or for one reset incident of a connection that carried on past
    its first RST (`carry_on.py`: then start, packets, resets and segments are that part's)."""

    cause: str                        # a cause id, AMBIGUOUS, UNKNOWN or SILENT_DROP
    sentence: str                     # one sentence a developer understands
    client: str | None                # "addr:port" of the side that sent the SYN, if seen
    server: str | None
    endpoints: tuple[str, str]        # client first when known
    rst_from: str | None              # "addr:port" of the first RST's sender
    rst_side: str | None              # "client", "server" or None (roles unknown); without a handshake, by a
                                      # likely server port on one end only (`verdict.port_side`)
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
    outlived: bool = False            # the connection went on past this RST (a later part has its own verdict)
    elided: tuple[tuple[int, float, float], ...] = ()   # a long connection's packets let go, not in `segments`:
    #                                                    (how many, the first one's time, the last one's), per gap
    segments: tuple[Packet, ...] = field(default=(), repr=False, compare=False)  # the connection's packets

    def as_dict(self, t0: float = 0.0) -> dict[str, Any]:
        """A JSON-ready mapping; times in seconds relative to `t0`. An evidence entry's
        `packet` is the packet's position among the file's TCP packets (0-based)."""
        out: dict[str, Any] = json.loads("{" + self.json_fields(t0) + "}")
        return out

    def json_fields(self, t0: float = 0.0) -> str:
        """`as_dict` as `json.dumps` writes it, without the braces (the members of a `--json` record): written
        straight from the fields, not through a dict, since a big capture has a million of them."""
        js, ts = encode_basestring_ascii, _text
        candidates = ", ".join([f'{{"cause": {js(c.cause)}, "why": {js(c.why)}, "tell": {js(c.tell)}}}'
                                for c in self.candidates])
        evidence = ", ".join([f'{{"packet": {e.packet.index}, "time": {_seconds(e.packet.time - t0)}, '
                              f'"line": {js(e.line)}, "why": {js(e.why)}}}' for e in self.evidence])
        rst_time = "null" if self.rst_time is None else _seconds(self.rst_time - t0)
        text = (f'"client": {ts(self.client)}, "server": {ts(self.server)}, '
                f'"endpoints": [{", ".join(map(js, self.endpoints))}], "cause": {js(self.cause)}, '
                f'"candidates": [{candidates}], "rst_from": {ts(self.rst_from)}, "rst_side": {ts(self.rst_side)}, '
                f'"explanation": {js(self.sentence)}, "evidence": [{evidence}], "notes": [{", ".join(map(js, self.notes))}], '
                f'"start": {_seconds(self.start - t0)}, "rst_time": {rst_time}, '
                f'"packets": {self.packets}, "resets": {self.resets}, '
                f'"conn_state": {js(self.conn_state)}, "history": {js(self.history)}, '
                f'"forged": [{", ".join(map(js, self.forged))}]')
        if self.path is not None:
            text += f', "path": {json.dumps(self.path.as_dict())}'
        return text


def _seconds(t: float) -> str:
    """`repr(round(t, 6))`, as `json.dumps` writes a time rounded to the microsecond, by a road three times
    faster where the two agree: for 1e-4 <= |t| < 1e9 both are fixed-point, and the six-decimal rounding is the
    shortest text of its double (doubles there lie closer than 1e-6 apart)."""
    if 1e-4 <= abs(t) < 1e9:
        text = f"{t:.6f}".rstrip("0")
        return text + "0" if text.endswith(".") else text
    return repr(round(t, 6))


def _text(value: str | None) -> str:
    """A string or None in JSON, as `json.dumps` writes it."""
    return "null" if value is None else encode_basestring_ascii(value)


@dataclass(frozen=True, slots=True)
class CaptureExplanation:
    """Every explained connection of one capture."""

    path: str
    packets: int                      # TCP packets in the file
    other: int                        # frames that were not TCP
    truncated: bool                   # the file ended mid-record: read up to the cut
    connections: int                  # TCP connections in the file
    t0: float                         # time of the first packet (0.0 if none)
    end: float                        # time of the last TCP packet (t0 if none): the capture's own span
    explanations: Sequence[Explanation]   # a tuple, or (a file's) `store.Explanations`, read back in order
    notes: tuple[str, ...] = ()       # what kind of capture it is: one-sided, duplicates, time order

    @property
    def failed(self) -> int:
        """Connections reset (a RST) or failed (a SYN never answered); not those explained without either
        (an out-of-window segment that drew an ACK and kept the connection: conntrack-invalid-liberal; a
        handshake the client never completed: half-open), nor a RST the connection went on past (its later
        reset is counted). A file's store counted them as they came."""
        from .store import overview

        return overview(self.explanations).failed

    def counts_text(self, number: Callable[[int], str] = str) -> str:
        """`3 reset or failed`, and how many were explained without a reset, if any (`number` formats
        each count: HTML makes it bold)."""
        from .store import overview

        seen = overview(self.explanations)
        half_open = seen.causes.get(HALF_OPEN, 0)
        others = len(self.explanations) - seen.failed - half_open - seen.outlived
        return f"{number(seen.failed)} reset or failed" + (
            f", {number(seen.outlived)} RST{'s' if seen.outlived != 1 else ''} a connection went on past"
            if seen.outlived else "") + (
            f", {number(half_open)} answered SYN/ACK and never completed" if half_open else "") + (
            f", {number(others)} with an out-of-window segment and no reset" if others else "")

    def as_json(self, chosen: Callable[[Explanation], bool] | None = None) -> list[dict[str, Any]]:
        """The `--json` records of this file: one per explained connection (those `chosen`), each with
        its `id` (its place among the file's connections) and its `incident` (the same verdict between
        the same two hosts: the group's cause, hosts, count, port and time ranges, its most telling
        connection's id)."""
        return list(self.records(chosen))

    def records(self, chosen: Callable[[Explanation], bool] | None = None) -> Iterator[dict[str, Any]]:
        """`as_json`'s records one at a time (`json_lines` read back)."""
        return map(json.loads, self.json_lines(chosen))

    def json_lines(self, chosen: Callable[[Explanation], bool] | None = None) -> Iterator[str]:
        """The `--json` records as JSON text, one at a time: a big capture's are written as they are made.
        Each incident's record is written once and put into each of its connections' records."""
        from .incidents import incidents
        from .store import Explanations, is_store

        if isinstance(self.explanations, Explanations) and is_store(self.explanations):
            yield from self._gathered_lines(self.explanations, chosen)
            return
        ids = {id(e): n for n, e in enumerate(self.explanations)}
        incident_of: dict[int, str] = {}
        for number, inc in enumerate(incidents(self.explanations)):
            text = json.dumps(inc.as_dict(self.t0, number, ids))
            incident_of.update((id(e), text) for e in inc.connections)
        head, t0 = self._record_head(), self.t0
        for n, e in enumerate(self.explanations):
            if chosen is None or chosen(e):
                yield _record(head, e.json_fields(t0), n, incident_of[id(e)])

    def _gathered_lines(self, store: Explanations, chosen: Callable[[Explanation], bool] | None) -> Iterator[str]:
        """`json_lines` of a store: the incidents from what it gathered, each connection read back once."""
        from .incidents import incidents

        texts: dict[int, str] = {}          # id(group) -> its incident's record
        for number, inc in enumerate(incidents(store)):
            assert inc.gathered is not None
            texts[id(inc.gathered)] = json.dumps(inc.as_dict(self.t0, number,
                                                             {id(inc.example): store.position(inc.gathered.example)}))
        head, t0 = self._record_head(), self.t0
        for pos, n in enumerate(store.order):
            if chosen is None:
                body = store.json_fields(n, t0)
            else:
                e = store.arrival(n)
                if not chosen(e):
                    continue
                body = e.json_fields(t0)
            yield _record(head, body, pos, texts[id(store.group_of(n))])

    def _record_head(self) -> str:
        """A `--json` record is written as `json.dumps` would write {"file", "capture_truncated", the verdict's
        `as_dict`, "id", "incident"}: this is its beginning, up to the verdict's fields."""
        return f'{{"file": {json.dumps(self.path)}, "capture_truncated": {json.dumps(self.truncated)}, '


def _record(head: str, verdict: str, number: int, incident: str) -> str:
    """A `--json` record: `head`, the verdict's members (`json_fields`), its id and its incident's record."""
    return f'{head}{verdict}, "id": {number}, "incident": {incident}}}'
