"""A capture's explanations in order, in memory that does not grow with them.

A capture dense in resets has a verdict for one connection in three, each with
its evidence and its packets (`Explanation.segments`, for the ladders): held as
objects, 10 million packets' worth need gigabytes. `Explanations` keeps the
first SPILL_AFTER in memory as they are; beyond that it writes each one to an
anonymous temporary file (marshal, a few hundred bytes) and keeps only its
offset and sort key, so the verdicts take disk, not memory, and are read back
one at a time in order. As they come it also gathers what the summary and the
incidents need (counts by cause, hosts, ports, time span, each incident's
members and most telling connection), so that printing them reads nothing back.
Where only the incidents' examples are drawn (not `--all`), the other verdicts
are spilled without their packets; where `--json` is printed, each with its
JSON text, which is then read back as it is, without decoding the verdict.
"""
from __future__ import annotations

import marshal
import os
import pickle
import tempfile
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from itertools import pairwise
from typing import IO, Any, overload

from ..capture import Packet
from .result import SILENT_DROP, Candidate, Evidence, Explanation, host_of, port_of

__all__ = ["SPILL_AFTER", "Chosen", "Explanations", "Group", "Members", "Overview", "chosen_of", "incident_key", "is_store",
           "overview"]

SPILL_AFTER = 1000        # explanations kept as objects; beyond this, all of them go to a temporary file
WRITE_AHEAD = 1 << 20     # bytes of spilled records gathered before they are written (a write a record: 5% of a
#                           dense capture's time went in the file's writes)
_FIELDS = tuple(f.name for f in fields(Explanation))
_CANDIDATES = _FIELDS.index("candidates")
_EVIDENCE = _FIELDS.index("evidence")
_SEGMENTS = _FIELDS.index("segments")
_MARSHAL, _PICKLE = b"M", b"P"


def incident_key(e: Explanation) -> tuple[str, tuple[str, ...], str, str]:
    """The same verdict between the same two hosts: (cause, candidates when ambiguous, client, server)."""
    cands = tuple(c.cause for c in e.candidates) if len(e.candidates) > 1 else ()
    return e.cause, cands, host_of(e.endpoints[0]), host_of(e.endpoints[1])


@dataclass(slots=True)
class Group:
    """One incident as its explanations arrive: arrival numbers of its members, and its aggregates."""

    key: tuple[str, tuple[str, ...], str, str]
    number: int                                         # its place among the store's groups, as they came
    members: array[int] = field(default_factory=lambda: array("q"))   # arrival numbers, in order once sealed
    first_key: tuple[float, int] = (float("inf"), 0)   # (start, connection) of its earliest member
    example: int = -1                                   # arrival number of its most telling member
    example_rank: tuple[int, float, int] = (-1, 0.0, 0)
    held: Explanation | None = None                     # that member, as it came (with its packets)
    low_port: int = 1 << 17
    high_port: int = -1
    ports: set[int] = field(default_factory=set)        # distinct server ports, up to SCAN_PORTS
    first: float = float("inf")
    last: float = float("-inf")

    def add(self, n: int, conn: int, e: Explanation, port_cap: int) -> None:
        if (e.start, conn) < self.first_key:
            self.first_key = (e.start, conn)
        rank = (len(e.evidence), -e.start, -conn)      # max() over the members in order picks the same
        if rank > self.example_rank:
            self.example_rank, self.example, self.held = rank, n, e
        port = port_of(e.endpoints[1])
        self.low_port = min(self.low_port, port)
        self.high_port = max(self.high_port, port)
        if len(self.ports) < port_cap:
            self.ports.add(port)
        self.first = min(self.first, e.start)
        self.last = max(self.last, e.start)


def _group(groups: dict[tuple[str, tuple[str, ...], str, str], Group], e: Explanation) -> Group:
    """The group of `e`'s incident in `groups`, made if `e` is its first (numbered in the order they are made)."""
    key = incident_key(e)
    group = groups.get(key)
    if group is None:
        group = groups[key] = Group(key, len(groups))
    return group


class _InOrder(Sequence[Explanation]):
    """Explanations named by their arrival numbers, in a given order, read when asked for."""

    def _numbers(self) -> Sequence[int]:
        raise NotImplementedError

    def arrival(self, n: int) -> Explanation:
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self._numbers())

    @overload
    def __getitem__(self, i: int) -> Explanation: ...

    @overload
    def __getitem__(self, i: slice) -> Sequence[Explanation]: ...

    def __getitem__(self, i: int | slice) -> Explanation | Sequence[Explanation]:
        if isinstance(i, slice):
            return [self.arrival(n) for n in self._numbers()[i]]
        return self.arrival(self._numbers()[i])

    def __iter__(self) -> Iterator[Explanation]:
        arrival = self.arrival
        for n in self._numbers():
            yield arrival(n)


class Explanations(_InOrder):
    """A capture's explanations, sorted by (start, connection number) once `seal`ed (see the module
    docstring). Add with `add(connection, explanation)` in any order, then `seal()`; a sealed store
    is an ordinary read-only sequence."""

    def __init__(self, spill_after: int = SPILL_AFTER, port_cap: int = 20, segments: bool = True,
                 json_t0: float | None = None, verdicts: bool = True) -> None:
        self.spill_after = spill_after
        self.port_cap = port_cap
        self.segments = segments        # False: a spilled verdict's packets are dropped but an example's
        self.json_t0 = json_t0          # set: a spilled verdict's `json_fields(json_t0)` is written beside it
        self.verdicts = verdicts        # False (with json_t0): only that JSON is written, for `--json` alone
        assert verdicts or json_t0 is not None, "a spilled verdict must be kept somehow"
        self._objects: list[Explanation] | None = []     # arrival order, until spilled
        self._file: IO[bytes] | None = None
        self._ahead = bytearray()                        # spilled records not yet written (WRITE_AHEAD)
        self._offsets = array("q", [0])                  # arrival n's record: offsets[n]:offsets[n + 1]
        self._json_at = array("q")                       # where its JSON text begins in it (with json_t0)
        self._start = array("d")                         # arrival n's sort key
        self._conn = array("q")
        self._order = array("q")                         # sorted position -> arrival number
        self._group_of = array("i")                      # arrival number -> its group's place in `groups`
        self._examples: dict[int, int] = {}              # an example's arrival number -> sorted position
        self._pinned: dict[int, Explanation] = {}        # arrival number -> object (incident examples)
        self.groups: dict[tuple[str, tuple[str, ...], str, str], Group] = {}
        self._group_list: list[Group] = []
        self.seen = Overview()
        self.sealed = False

    # --- building ----------------------------------------------------------------

    def add(self, conn: int, e: Explanation) -> None:
        """Take the verdict of connection number `conn`."""
        n = len(self._start)
        self._start.append(e.start)
        self._conn.append(conn)
        group = _group(self.groups, e)
        if group.number == len(self._group_list):
            self._group_list.append(group)
        self._group_of.append(group.number)
        group.add(n, conn, e, self.port_cap)
        self.seen.add(e)
        if self._objects is not None:
            self._objects.append(e)
            if len(self._objects) > self.spill_after:
                self._spill()
        else:
            self._write(e)

    def _spill(self) -> None:
        assert self._objects is not None
        self._file = tempfile.TemporaryFile(prefix="rstlab-explain-")   # noqa: SIM115  # closed by close()
        objects, self._objects = self._objects, None
        for e in objects:
            self._write(e)

    def _write(self, e: Explanation) -> None:
        assert self._file is not None
        data = _encode(e, self.segments) if self.verdicts else b""
        if self.json_t0 is not None:
            self._json_at.append(self._offsets[-1] + len(data))
            data += e.json_fields(self.json_t0).encode()
        self._ahead += data
        if len(self._ahead) >= WRITE_AHEAD:
            self._written()
        self._offsets.append(self._offsets[-1] + len(data))

    def _written(self) -> IO[bytes]:
        """The temporary file, with every record spilled so far in it (at its end: a record read back may have
        moved the position)."""
        assert self._file is not None
        if self._ahead:
            self._file.seek(0, os.SEEK_END)
            self._file.write(self._ahead)
            self._ahead.clear()
        return self._file

    def seal(self) -> Explanations:
        """Sort; after this the store is read-only. Returns itself."""
        self._order = order = _sorted(self._start, self._conn)
        self._start, self._conn = array("d"), array("q")
        examples = {g.example for g in self._group_list}
        group_of, groups = self._group_of, self._group_list
        for pos, n in enumerate(order):        # each group's members in order, and its example's place
            groups[group_of[n]].members.append(n)
            if n in examples:
                self._examples[n] = pos
        if self._file is not None:
            self._written().flush()
        for group in self.groups.values():       # the examples keep their identity and their packets
            if self._objects is None:
                assert group.held is not None
                self._pinned[group.example] = group.held
            group.held = None
        self.sealed = True
        return self

    def close(self) -> None:
        """Remove the temporary file (it goes anyway when the process ends)."""
        if self._file is not None:
            self._file.close()

    # --- reading -----------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        """Equal to any sequence of the same explanations in the same order (a tuple of them too)."""
        if not isinstance(other, (Explanations, tuple, list)) or len(other) != len(self):
            return NotImplemented if not isinstance(other, Sequence) else False
        return all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]  # mutable until sealed, and compared by content

    @property
    def spilled(self) -> bool:
        return self._file is not None

    def _numbers(self) -> Sequence[int]:
        return self._order

    def arrival(self, n: int) -> Explanation:
        """The explanation that arrived n-th."""
        if self._objects is not None:
            return self._objects[n]
        pinned = self._pinned.get(n)
        return pinned if pinned is not None else self._read(n)

    @property
    def order(self) -> array[int]:
        """Arrival numbers in sorted order."""
        return self._order

    def position(self, n: int) -> int:
        """The sorted position (the `--json` id) of an incident's example that arrived n-th."""
        return self._examples[n]

    def group_of(self, n: int) -> Group:
        """The incident of the explanation that arrived n-th."""
        return self._group_list[self._group_of[n]]

    def _read(self, n: int) -> Explanation:
        assert self._file is not None
        if not self.verdicts:
            raise LookupError(f"verdict {n} was kept as its --json text only (Explanations(verdicts=False))")
        lo, hi = self._offsets[n], self._json_at[n] if self._json_at else self._offsets[n + 1]
        f = self._written()
        f.seek(lo)
        return _decode(f.read(hi - lo))

    def json_fields(self, n: int, t0: float) -> str:
        """`self.arrival(n).json_fields(t0)`: read as it was written when the store was made for that
        (`json_t0`) and the verdict spilled, so that it is not decoded."""
        if self._file is None or t0 != self.json_t0:
            return self.arrival(n).json_fields(t0)
        lo, hi = self._json_at[n], self._offsets[n + 1]
        f = self._written()
        f.seek(lo)
        return f.read(hi - lo).decode()


class Members(_InOrder):
    """An incident's explanations in order, read from the store when asked for."""

    def __init__(self, store: Explanations, group: Group) -> None:
        self.store = store
        self.arrivals = group.members

    def _numbers(self) -> Sequence[int]:
        return self.arrivals

    def arrival(self, n: int) -> Explanation:
        return self.store.arrival(n)


def _sorted(start: array[float], conn: array[int]) -> array[int]:
    """Arrival numbers in order of (start, connection number). Connections are numbered in order of
    their first packet, so where time runs forward that is the order of their numbers: placed by
    number (a few bytes each), checked, and sorted only if time went backwards or a connection has
    more than one verdict (`carry_on`: its later part starts later)."""
    if not conn:
        return array("q")
    slot = array("q", [-1]) * (max(conn) + 1)
    for n, c in enumerate(conn):
        slot[c] = n
    order = array("q", (n for n in slot if n >= 0))
    del slot
    if len(order) == len(conn) and all(start[a] <= start[b] for a, b in pairwise(order)):
        return order
    by_number = sorted(range(len(conn)), key=conn.__getitem__)
    by_number.sort(key=start.__getitem__)          # stable: ties stay in number order
    return array("q", by_number)


def _encode(e: Explanation, segments: bool = True) -> bytes:
    values: list[Any] = [getattr(e, name) for name in _FIELDS]
    values[_CANDIDATES] = tuple((c.cause, c.why, c.tell) for c in e.candidates)
    values[_EVIDENCE] = tuple((tuple(ev.packet), ev.line, ev.why) for ev in e.evidence)
    values[_SEGMENTS] = tuple(map(tuple, e.segments)) if segments else ()
    try:
        return _MARSHAL + marshal.dumps(tuple(values))
    except ValueError:                        # a value marshal does not take (a path across points)
        return _PICKLE + pickle.dumps(e, pickle.HIGHEST_PROTOCOL)


def _decode(data: bytes) -> Explanation:
    if data[:1] == _PICKLE:
        e: Explanation = pickle.loads(data[1:])
        return e
    values = list(marshal.loads(data[1:]))
    make = tuple.__new__
    values[_CANDIDATES] = tuple(Candidate(*c) for c in values[_CANDIDATES])
    values[_EVIDENCE] = tuple(Evidence(make(Packet, p), line, why) for p, line, why in values[_EVIDENCE])
    values[_SEGMENTS] = tuple(make(Packet, p) for p in values[_SEGMENTS])
    return Explanation(*values)


@dataclass(slots=True)
class Overview:
    """What a summary says of a capture's explanations: counts by cause, hosts, server ports, time span."""

    causes: dict[str, int] = field(default_factory=dict)
    failed: int = 0                               # reset (a RST) or failed (a SYN never answered)
    outlived: int = 0                             # RSTs a connection went on past (`carry_on`): not failures
    hosts: set[str] = field(default_factory=set)
    server_ports: set[int] = field(default_factory=set)
    first: float = float("inf")                   # earliest start
    last: float = float("-inf")                   # latest RST time (or start, when no RST)

    def add(self, e: Explanation) -> None:
        self.causes[e.cause] = self.causes.get(e.cause, 0) + 1
        if e.outlived:
            self.outlived += 1
        elif e.resets or e.cause == SILENT_DROP:
            self.failed += 1
        self.hosts.add(host_of(e.endpoints[0]))
        self.hosts.add(host_of(e.endpoints[1]))
        self.server_ports.add(port_of(e.endpoints[1]))
        self.first = min(self.first, e.start)
        self.last = max(self.last, e.rst_time or e.start)


class Chosen(_InOrder):
    """The explanations of a sealed store that a selection keeps (`--conn`, `--host`), in its order, read back
    when asked for: one pass finds their arrival numbers and gathers their overview and their incidents (each
    group's most telling member held, as the store holds its own); nothing else is held."""

    def __init__(self, store: Explanations, keep: Callable[[Explanation], bool]) -> None:
        self.store = store
        self._picked = array("q")
        self.seen = Overview()
        self.groups: dict[tuple[str, tuple[str, ...], str, str], Group] = {}
        for pos, n in enumerate(store.order):
            e = store.arrival(n)
            if not keep(e):
                continue
            self._picked.append(n)
            self.seen.add(e)
            group = _group(self.groups, e)
            group.members.append(n)
            group.add(n, pos, e, store.port_cap)   # the sorted position orders ties as the connection number does

    def _numbers(self) -> Sequence[int]:
        return self._picked

    def arrival(self, n: int) -> Explanation:
        return self.store.arrival(n)


def chosen_of(explanations: Sequence[Explanation], keep: Callable[[Explanation], bool]) -> Sequence[Explanation]:
    """The explanations `keep` chooses: read back one at a time from a store, else a tuple."""
    if isinstance(explanations, Explanations) and explanations.sealed:
        return Chosen(explanations, keep)
    return tuple(filter(keep, explanations))


def overview(explanations: Sequence[Explanation]) -> Overview:
    """The `Overview` of some explanations (a store's, or a selection's of one, was gathered as they came)."""
    if isinstance(explanations, Explanations) and explanations.sealed:
        return explanations.seen
    if isinstance(explanations, Chosen):
        return explanations.seen
    seen = Overview()
    for e in explanations:
        seen.add(e)
    return seen


def is_store(explanations: Sequence[Explanation]) -> bool:
    return isinstance(explanations, Explanations) and explanations.sealed
