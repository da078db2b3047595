"""The first pass over a capture: what every cause may need to know about the whole file, in
memory that grows with the connections, never with the packets.

`Survey.take` takes each packet once, in file order, and keeps per connection
a few bytes (which connections hold a RST or only SYNs, which were seen both
ways, where each one's last packet is) and per address its IP-level look
(`Profile`: TTLs and DF of its ordinary packets). Frames seen twice are
folded with the same rule as a connection's packets (`facts.CopyFolder`, one
for the whole file, keeping only the last COPY_WINDOW of segments), so that the
capture host's own and forwarded addresses are known too. The second pass
(analysis.py) then keeps the packets of the connections worth explaining.
"""
from __future__ import annotations

import heapq
from array import array
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from ..capture import (
    FLAG_KIND,
    KIND_BARE_RST,
    KIND_CONN,
    KIND_FIRST_SYN,
    KIND_NOT_FIRST_SYN,
    KIND_NOT_SYN,
    KIND_RST,
    KIND_STEP_SHIFT,
    KIND_SYN,
    KIND_SYNACK,
    Packet,
)
from ..encap import IcmpError
from .facts import COPY_WINDOW, FORWARDED, KEPT, CopyFolder

__all__ = ["ID_SHARED_CHAIN", "ID_SHARED_STEP", "ID_SHARED_WINDOW", "RESETS", "SYNS", "IdRuns", "Profile", "Survey"]

ID_SHARED_WINDOW = 2.0    # s: RSTs this close whose IP IDs follow each other may share a counter
ID_SHARED_STEP = 4        # at most this many IDs apart
ID_SHARED_CHAIN = 3       # a chain of at least this many RSTs from two or more sources is a shared counter
ID_CHAIN_MAX = 64         # a chain is followed back at most this many RSTs
ID_REORDER = 2.0          # s: RSTs are taken in time order within this much of the latest time seen
RESETS, SYNS = 1, 2       # Survey.followed: a connection holding a RST; one holding only SYNs (and SYN/ACKs)

# bits of Survey.flags, per connection: its packets' kinds OR-ed (capture.KIND_CONN: a RST; a packet other than a
# first SYN; a SYN of any kind; a packet without SYN; a first SYN (no ACK)) and survey's own in the bits the
# kinds leave free: packets both ways; a data segment far above its side's sequence space (facts.stray_facts
# looks closer); opened by a twin end
_RST, _MORE_THAN_SYNS, _SYN, _NOT_SYN, _FIRST_SYN = KIND_RST, KIND_NOT_FIRST_SYN, KIND_SYN, KIND_NOT_SYN, KIND_FIRST_SYN
_BOTH_WAYS, _STRAY, _OPENED = 32, 64, 128         # bits 5-7: no kind sets them
_HALF_OPEN_MASK = _MORE_THAN_SYNS | _NOT_SYN | _FIRST_SYN     # SYNs and SYN/ACKs, nothing else
_SEQ_MOD, _NO_SEQ = 0xFFFFFFFF, -1
_Look = tuple[str, str | None, int | None, bool | None]       # source, direction, TTL, DF
_FOLDER_PRUNE = 4096      # the copy folder is pruned of old segments beyond this many (or twice what it kept)


def _syns_only(bits: int) -> bool:
    """A connection's bits (Survey.flags) say it holds only SYNs, or only its client's SYNs and SYN/ACKs (a
    handshake never completed): what is explained of it without a RST is an unanswered or a half-open SYN."""
    return not bits & _MORE_THAN_SYNS or bits & _HALF_OPEN_MASK == _MORE_THAN_SYNS | _FIRST_SYN


@dataclass(slots=True)
class Profile:
    """The IP-level look of one address's non-RST packets as they arrive at one capture point."""

    packets: int = 0
    ttls: Counter[int] = field(default_factory=Counter)
    df: Counter[bool] = field(default_factory=Counter)

    def count(self, ttl: int | None, df: bool | None, n: int = 1) -> None:
        self.packets += n
        if ttl is not None:
            self.ttls[ttl] += n
        if df is not None:
            self.df[df] += n


class IdReset(NamedTuple):
    """What the IP ID evidence keeps of a RST: its frame, sender and IP ID."""

    frame: int        # its packet's index
    src: str
    ip_id: int


# a RST taken into the runs: its time, itself, how many RSTs from the front of its chain (itself
# first) share its sender, and the RSTs before it in its chain (at most ID_CHAIN_MAX - 1, latest first)
_IdNode = tuple[float, IdReset, int, tuple[IdReset, ...]]


class IdRuns:
    """Chains of RSTs whose IP IDs follow each other (each at most ID_SHARED_STEP above the latest
    RST within ID_SHARED_WINDOW that carried the one before), found as the RSTs come, in order of
    (time, connection, frame), in memory bounded by the IP ID space and the RSTs of the last few
    seconds, never by the capture's length. `found` maps a RST's frame to another address's RST of
    its chain, for the RSTs of chains of ID_SHARED_CHAIN or more "from" two or more addresses
    (one box's counter sent them all). RSTs whose timestamps go back by more than ID_REORDER are
    taken late, out of time order."""

    __slots__ = ("_by_id", "_heap", "_latest", "_prune_at", "found")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, int, int, str]] = []
        self._latest = float("-inf")
        self._by_id: dict[int, _IdNode] = {}      # IP ID -> the latest RST taken that carried it
        self._prune_at = _FOLDER_PRUNE
        self.found: dict[int, IdReset] = {}

    def add(self, time: float, conn: int, index: int, ip_id: int, src: str) -> None:
        heap = self._heap
        heapq.heappush(heap, (time, conn, index, ip_id, src))
        if time > self._latest:
            self._latest = time
            horizon = time - ID_REORDER
            while heap[0][0] < horizon:
                self._take(heapq.heappop(heap))

    def drain(self) -> None:
        """Take the RSTs still waiting (at the end of the capture)."""
        heap = self._heap
        while heap:
            self._take(heapq.heappop(heap))

    def _take(self, item: tuple[float, int, int, int, str]) -> None:
        time, _conn, index, ip_id, src = item
        me = IdReset(index, src, ip_id)
        by_id = self._by_id
        run = 1
        before: tuple[IdReset, ...] = ()
        for step in range(1, ID_SHARED_STEP + 1):
            q = by_id.get((ip_id - step) & 0xFFFF)
            if q is not None and time - q[0] <= ID_SHARED_WINDOW:
                prev = q[1]
                before = (prev, *q[3][:ID_CHAIN_MAX - 2])
                if prev.src == src:
                    run = min(q[2] + 1, ID_CHAIN_MAX)
                break
        by_id[ip_id] = (time, me, run, before)
        if len(by_id) > self._prune_at:           # forget the RSTs no later one can continue
            horizon = time - ID_SHARED_WINDOW
            for key in [key for key, node in by_id.items() if node[0] < horizon]:
                del by_id[key]
            self._prune_at = max(_FOLDER_PRUNE, 2 * len(by_id))
        if len(before) + 1 < ID_SHARED_CHAIN or run > len(before):
            return                                  # too short, or one sender only
        chain = (me, *before)
        other = chain[run]                          # the first RST of the chain from another sender
        found = self.found
        for r in chain:
            found.setdefault(r.frame, other if r.src == src else me)


class Survey:
    """Capture-wide facts gathered in one pass (see the module docstring)."""

    def __init__(self) -> None:
        self.packets = 0
        self.t0: float | None = None
        self.flags = bytearray()              # per connection: _RST, _MORE_THAN_SYNS, _BOTH_WAYS
        self.last_index = array("q")          # per connection: index of its last packet
        self.last_time = array("d")           # per connection: time of its last packet
        self._first_sport = array("H")        # per connection: source port of its first packet
        self._first_src: dict[int, str] = {}  # the first packet's source, where sport == dport
        self._high = (array("q"), array("q"))  # per connection and side: highest sequence end so far
        # bare RSTs before any SYN: (conn, sender) -> the time of its first
        self._bare_unopened: dict[tuple[int, str, int], float] = {}
        self._twin_times: dict[tuple[str, int], list[float]] | None = None
        # per connection seen one way so far: (look, count), or {look: count} once it has two looks
        self._pending: dict[int, tuple[_Look, int] | dict[_Look, int]] = {}
        self._folder = CopyFolder()            # one for all connections, keyed by connection
        self._fold_limit = _FOLDER_PRUNE
        self._looks: dict[_Look, int] = {}   # counted into profiles
        self._profiles: dict[tuple[str, str | None], Profile] | None = None
        self.own: set[str] = set()            # sources of packets the capture host sent itself
        self.transit: set[str] = set()        # addresses of packets it forwarded
        self.copies = 0                       # frames folded as copies of another
        self.id_runs = IdRuns()               # the RSTs with an IP ID, as chains of consecutive ones
        self.backwards = 0                    # times a timestamp went backwards
        self.first_backwards = -1             # index of the packet before the first of them
        self._prev_time = float("-inf")
        self.icmp: tuple[IcmpError, ...] = ()

    def take(self, packets: Iterable[tuple[int, Packet]]) -> None:
        """Take the packets of the file in order, each with its connection number (one loop, its state
        in local names: it runs for every packet)."""
        flags, last_index, last_time, first_sport = self.flags, self.last_index, self.last_time, self._first_sport
        first_src, high_of, looks, pendings = self._first_src, self._high, self._looks, self._pending
        own, transit, folder, id_runs, kinds = self.own, self.transit, self._folder, self.id_runs, FLAG_KIND
        n_packets, copies, prev_time, fold_limit = self.packets, self.copies, self._prev_time, self._fold_limit
        self._profiles = None
        try:
            for conn, p in packets:
                src = p.src
                sport = p.sport
                t = p.time
                if conn == len(flags):
                    flags.append(0)
                    last_index.append(0)
                    last_time.append(0.0)
                    first_sport.append(sport)
                    high_of[0].append(_NO_SEQ)
                    high_of[1].append(_NO_SEQ)
                    if sport == p.dport:
                        first_src[conn] = src
                    if self.t0 is None:
                        self.t0 = t
                old = flags[conn]
                kind = kinds[p.flags]
                bits = old | (kind & KIND_CONN)
                rst = kind & _RST
                if rst:
                    if p.ip_id:
                        id_runs.add(t, conn, p.index, p.ip_id, src)
                    if kind & KIND_BARE_RST and not old & _SYN:
                        self._bare_unopened.setdefault((conn, src, sport), t)
                side = sport != first_sport[conn] or (conn in first_src and src != first_src[conn])
                if side and not bits & _BOTH_WAYS:
                    bits |= _BOTH_WAYS
                    self._flush(conn)
                n = p.length
                step = kind >> KIND_STEP_SHIFT
                if n or step:                             # as facts.stray_facts walks a connection
                    high = high_of[side]
                    h = high[conn]
                    seq = p.seq
                    if n and h != _NO_SEQ and 0xFFFF < (seq - h) & _SEQ_MOD <= 0x80000000:
                        bits |= _STRAY
                    end = (seq + n + step) & _SEQ_MOD
                    if h == _NO_SEQ or 0 < (end - h) & _SEQ_MOD < 0x80000000:
                        high[conn] = end
                flags[conn] = bits
                last_index[conn] = p.index
                last_time[conn] = t
                if t < prev_time:
                    self.backwards += 1
                    if self.first_backwards < 0:
                        self.first_backwards = p.index - 1
                prev_time = t
                direction = p.direction
                if not rst:
                    key = (src, direction, p.ttl, p.df)
                    if bits & _BOTH_WAYS or kind & KIND_SYNACK:
                        looks[key] = looks.get(key, 0) + 1
                    else:     # one way so far: it counts if an answer comes (a scanner's SYNs do not)
                        pending = pendings.get(conn)
                        if pending is None:
                            pendings[conn] = (key, 1)
                        elif isinstance(pending, tuple):
                            pendings[conn] = (key, pending[1] + 1) if pending[0] == key else {pending[0]: pending[1], key: 1}
                        else:
                            pending[key] = pending.get(key, 0) + 1
                # frames seen twice: the capture host's own and forwarded addresses
                kept = folder.keep(p, conn)
                if kept == KEPT:
                    if direction == "out" and not rst:
                        own.add(src)
                else:
                    copies += 1
                    if kept == FORWARDED:
                        transit.add(src)
                        transit.add(p.dst)
                if len(folder.seen) > fold_limit:      # keep only the last COPY_WINDOW of segments
                    folder.prune(t - COPY_WINDOW)
                    folder.forwarded.clear()           # the survey needs only what keep() says
                    fold_limit = max(_FOLDER_PRUNE, 2 * len(folder.seen))
                n_packets += 1
        finally:
            self.packets, self.copies, self._prev_time, self._fold_limit = n_packets, copies, prev_time, fold_limit

    @property
    def profiles(self) -> dict[tuple[str, str | None], Profile]:
        """(address, direction) -> the look of its packets counted so far."""
        if self._profiles is None:
            profiles: dict[tuple[str, str | None], Profile] = {}
            for (src, direction, ttl, df), n in self._looks.items():
                prof = profiles.get((src, direction))
                if prof is None:
                    prof = profiles[(src, direction)] = Profile()
                prof.count(ttl, df, n)
            self._profiles = profiles
        return self._profiles

    def _flush(self, conn: int) -> None:
        """The connection got an answer: its earlier one-way packets count in the profiles."""
        looks = self._looks
        pending = self._pending.pop(conn, {})
        for key, n in pending.items() if isinstance(pending, dict) else (pending,):
            looks[key] = looks.get(key, 0) + n
        self._profiles = None

    # --- after the pass -----------------------------------------------------------

    @property
    def connections(self) -> int:
        return len(self.flags)

    def wanted(self) -> bytearray:
        """Per connection, 1 when the second pass keeps its packets: it holds a RST, or only SYNs
        (answered by SYN/ACKs or not), or a segment that may be out of window, or a twin end opened it."""
        return bytearray(1 if b & (_RST | _STRAY | _OPENED) or _syns_only(b) else 0 for b in self.flags)

    def followed(self) -> bytearray:
        """Per connection, what several capture points follow of it across them: RESETS when it holds a RST (its
        segments), SYNS when it holds no RST and only SYNs, or SYNs and SYN/ACKs (an unanswered SYN's sequence
        number), else 0."""
        return bytearray(RESETS if b & _RST else SYNS if _syns_only(b) else 0 for b in self.flags)

    def explained(self, conn: int) -> bool:
        """The connection holds a RST, or only SYNs, or only SYNs and SYN/ACKs (a handshake never
        completed); else it is kept as a possible stray or twin."""
        b = self.flags[conn]
        return bool(b & _RST or _syns_only(b))

    def opened_by_twin(self, conn: int) -> bool:
        return bool(self.flags[conn] & _OPENED)

    def twin_ends(self) -> set[tuple[str, int]]:
        """Ends that sent a bare RST on a connection never seen opened (no SYN either way): the
        connections such an end opened itself are where conntrack-invalid-unnat looks for the
        numbers the stray segment carries."""
        return {(src, sport) for conn, src, sport in self._bare_unopened if not self.flags[conn] & _SYN}

    def twin_times(self, end: tuple[str, int]) -> list[float]:
        """When `end` (a twin end) sent its bare RSTs on connections never seen opened, in order: the first of
        each such connection. A connection `end` opened keeps what precedes each (`facts.Connection.elide`)."""
        if self._twin_times is None:
            times: dict[tuple[str, int], list[float]] = {}
            for (conn, src, sport), t in self._bare_unopened.items():
                if not self.flags[conn] & _SYN:
                    times.setdefault((src, sport), []).append(t)
            self._twin_times = {key: sorted(ts) for key, ts in times.items()}
        return self._twin_times.get(end, [])

    def mark_opened(self, conn: int) -> None:
        """A connection a twin end opened: the second pass keeps it for `Context.opened_by`."""
        self.flags[conn] |= _OPENED

    def only_syns(self, conn: int) -> bool:
        return not self.flags[conn] & _MORE_THAN_SYNS

    def any_both_ways(self) -> bool:
        return any(b & _BOTH_WAYS for b in self.flags)

    def end_time(self) -> float:
        """The time of the last packet of the connection that ended last."""
        return max(self.last_time, default=self.t0 or 0.0)

    def finish(self) -> None:
        """Drop what only the pass needed."""
        self._pending.clear()
        self._folder = CopyFolder()
        self._first_src.clear()
        self._first_sport = array("H")
        self._high = (array("q"), array("q"))
