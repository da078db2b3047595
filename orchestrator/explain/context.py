"""Evidence that spans connections: refused SYNs, listener batches, the capture host's own
and forwarded addresses, and what each address's ordinary packets look like."""
from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..capture import Packet
from ..encap import IcmpError
from .facts import Addr, Connection, Facts

__all__ = ["BATCH_WINDOW", "Context", "Profile"]

BATCH_WINDOW = 0.010      # s: resets of one listener this close together come from one close()
ONE_SIDED_MIN = 10        # connections: fewer without any answer may all have been dropped
ID_SHARED_WINDOW = 2.0    # s: RSTs this close whose IP IDs follow each other may share a counter
ID_SHARED_STEP = 4        # at most this many IDs apart
ID_SHARED_CHAIN = 3       # a chain of at least this many RSTs from two or more sources is a shared counter


@dataclass(slots=True)
class Profile:
    """The IP-level look of one address's non-RST packets as they arrive at one capture point."""

    packets: int = 0
    ttls: Counter[int] = field(default_factory=Counter)
    ip_ids: list[tuple[float, int]] = field(default_factory=list)   # (time, IP ID), non-zero only
    df: Counter[bool] = field(default_factory=Counter)


class Context:
    """Capture-wide evidence, filled once and read by every cause."""

    def __init__(self, conns: list[Connection], t0: float, local: frozenset[str],
                 icmp: Sequence[IcmpError] = ()) -> None:
        self.conns = conns
        self.icmp: dict[frozenset[tuple[str, int]], list[IcmpError]] = {}
        for err in icmp:
            key = frozenset(((err.src, err.sport), (err.dst, err.dport)))
            self.icmp.setdefault(key, []).append(err)
        # many connections and not one packet back: the capture recorded one direction only
        self.one_sided = len(conns) >= ONE_SIDED_MIN and not any(c.both_ways for c in conns)
        self.t0 = t0
        self.end_time = t0            # time of the capture's last packet
        self.user_local = local
        self.refusals: dict[Addr, list[tuple[float, Packet]]] = {}
        self.silent_server_resets: dict[Addr, list[float]] = {}
        self.aborts: dict[str, list[tuple[float, Facts]]] = {}   # abortive resets (`R.`) by sender address
        self.bare_resets: dict[Addr, list[Facts]] = {}          # no-socket resets by sender endpoint
        self._addresses: tuple[set[str], set[str]] | None = None
        self._profiles: dict[tuple[str, str | None], Profile] | None = None
        self._shared: dict[int, Packet] | None = None
        self._opened_by: dict[Addr, list[Connection]] | None = None

    def note_reset(self, f: Facts) -> None:
        """Remember what other connections' verdicts need to know about this reset."""
        if f.family == "refused":
            self.refusals.setdefault(f.x, []).append((f.rst.time, f.rst))
        elif f.family == "abort" and f.x_role == "server" and f.x_data == 0:
            times = self.silent_server_resets.setdefault(f.x, [])
            bisect.insort(times, f.rst.time)
        if f.family == "abort":
            bisect.insort(self.aborts.setdefault(f.x[0], []), (f.rst.time, f), key=lambda e: e[0])
        elif f.family == "no-socket":
            self.bare_resets.setdefault(f.x, []).append(f)

    def addresses(self) -> tuple[set[str], set[str]]:
        """(addresses the capture host sent non-RST packets from, addresses it forwarded for)."""
        if self._addresses is None:
            own: set[str] = set()
            transit: set[str] = set()
            for c in self.conns:
                if not any(p.direction == "out" for p in c.raw):
                    continue
                c.prepare()
                for p in c.pk:
                    if p.index in c.forwarded:
                        transit.add(p.src)
                        transit.add(p.dst)
                    elif p.direction == "out" and not p.is_rst:
                        own.add(p.src)
            self._addresses = (own - transit, transit)
        return self._addresses

    def profile(self, addr: str, direction: str | None) -> Profile:
        """How `addr`'s non-RST packets look in this direction (empty if it sent none): only
        packets of connections seen both ways, and SYN/ACKs, which a host's own stack sends."""
        if self._profiles is None:
            table: dict[tuple[str, str | None], Profile] = {}
            for c in self.conns:
                live = c.both_ways       # a scanner's crafted SYNs are no baseline for its stack
                for p in c.raw:
                    if p.is_rst or not (live or p.is_synack):
                        continue
                    prof = table.get((p.src, p.direction))
                    if prof is None:
                        prof = table[(p.src, p.direction)] = Profile()
                    prof.packets += 1
                    if p.ttl is not None:
                        prof.ttls[p.ttl] += 1
                    if p.ip_id:
                        prof.ip_ids.append((p.time, p.ip_id))
                    if p.df is not None:
                        prof.df[p.df] += 1
            for prof in table.values():
                prof.ip_ids.sort()
            self._profiles = table
        return self._profiles.get((addr, direction), Profile())

    def shared_counter(self, rst: Packet) -> Packet | None:
        """Another address's RST in the same chain of consecutive IP IDs as `rst`, when RSTs
        "from" two or more addresses continue one counter (one box forged them all)."""
        if self._shared is None:
            self._shared = _shared_chains(self.conns)
        return self._shared.get(rst.index)

    def opened_by(self, end: Addr) -> list[Connection]:
        """The connections whose first packet is a SYN from `end` (an address and port): those it opened."""
        if self._opened_by is None:
            table: dict[Addr, list[Connection]] = {}
            for c in self.conns:
                p = c.raw[0]
                if p.is_first_syn:
                    table.setdefault((p.src, p.sport), []).append(c)
            self._opened_by = table
        return self._opened_by.get(end, [])

    def aborts_near(self, addr: str, t: float, window: float) -> list[Facts]:
        """The abortive resets `addr` sent within `window` seconds of `t`."""
        times = self.aborts.get(addr, [])
        lo = bisect.bisect_left(times, t - window, key=lambda e: e[0])
        hi = bisect.bisect_right(times, t + window, key=lambda e: e[0])
        return [f for _, f in times[lo:hi]]

    def icmp_about(self, conn: Connection) -> list[IcmpError]:
        """The ICMP errors that quote a segment of this connection."""
        p = conn.raw[0]
        return self.icmp.get(frozenset(((p.src, p.sport), (p.dst, p.dport))), [])

    def refusal_between(self, server: Addr, lo: float, hi: float) -> Packet | None:
        """A SYN to `server` refused (closed-port shape) in the interval (lo, hi]."""
        for t, p in self.refusals.get(server, ()):
            if lo < t <= hi:
                return p
        return None

    def batch_size(self, server: Addr, t: float) -> int:
        """How many silent-server resets of this listener fall within BATCH_WINDOW of t."""
        times = self.silent_server_resets.get(server, [])
        lo = bisect.bisect_left(times, t - BATCH_WINDOW)
        hi = bisect.bisect_right(times, t + BATCH_WINDOW)
        return hi - lo


def _shared_chains(conns: list[Connection]) -> dict[int, Packet]:
    """RST index -> a RST from another address in its IP ID chain."""
    resets = sorted((p for c in conns for p in c.raw if p.is_rst and p.ip_id), key=lambda p: p.time)
    by_id: dict[int, Packet] = {}           # IP ID -> the latest RST that carried it
    prev: dict[int, Packet] = {}            # RST index -> the RST its IP ID continues
    for p in resets:
        assert p.ip_id is not None
        for step in range(1, ID_SHARED_STEP + 1):
            q = by_id.get((p.ip_id - step) & 0xFFFF)
            if q is not None and p.time - q.time <= ID_SHARED_WINDOW:
                prev[p.index] = q
                break
        by_id[p.ip_id] = p
    out: dict[int, Packet] = {}
    for p in resets:
        chain = [p]
        while chain[-1].index in prev and len(chain) < 64:
            chain.append(prev[chain[-1].index])
        if len(chain) < ID_SHARED_CHAIN or len({q.src for q in chain}) < 2:
            continue
        for q in chain:
            other = next(r for r in chain if r.src != q.src)
            out.setdefault(q.index, other)
    return out
