"""Evidence that spans connections: refused SYNs, listener batches, the capture host's own
and forwarded addresses, and what each address's ordinary packets look like."""
from __future__ import annotations

import bisect
from typing import NamedTuple

from ..capture import Packet
from ..encap import IcmpError
from .facts import Addr, Connection, Facts
from .survey import IdReset, Profile, Survey

__all__ = ["BATCH_WINDOW", "BareReset", "Context", "Profile"]

BATCH_WINDOW = 0.010      # s: resets of one listener this close together come from one close()
ONE_SIDED_MIN = 10        # connections: fewer without any answer may all have been dropped
_NO_PACKETS = Profile()   # the profile of an address that sent nothing (read, never counted into)


class BareReset(NamedTuple):
    """What a later verdict needs of a no-socket reset (not its whole connection)."""

    number: int                  # its connection's number
    rst: Packet
    answered: Packet | None
    y: Addr


class Context:
    """Capture-wide evidence, from the survey (the first pass) and the resets noted so far."""

    def __init__(self, survey: Survey, local: frozenset[str]) -> None:
        self.survey = survey
        self.icmp: dict[frozenset[tuple[str, int]], list[IcmpError]] = {}
        for err in survey.icmp:
            key = frozenset(((err.src, err.sport), (err.dst, err.dport)))
            self.icmp.setdefault(key, []).append(err)
        # many connections and not one packet back: the capture recorded one direction only
        self.one_sided = survey.connections >= ONE_SIDED_MIN and not survey.any_both_ways()
        self.t0 = survey.t0 or 0.0
        self.end_time = survey.end_time()     # time of the capture's last packet
        self.user_local = local
        self.refusals: dict[Addr, list[tuple[int, float, Packet]]] = {}   # by connection number
        self.silent_server_resets: dict[Addr, list[float]] = {}
        self.aborts: dict[str, list[tuple[float, int, Facts]]] = {}   # abortive resets (`R.`) by sender address
        self.bare_resets: dict[Addr, list[BareReset]] = {}           # no-socket resets by sender endpoint
        self.opened: dict[Addr, list[Connection]] = {}   # connections opened by the survey's twin_ends
        self.probed: dict[tuple[str, str], set[int]] = {}   # (client, server address) -> ports probed

    def note_reset(self, f: Facts) -> None:
        """Remember what other connections' verdicts need to know about this reset."""
        number = f.conn.number       # lists stay in connection order, whatever order resets come in
        self._note_probe(f.conn)
        if f.family == "refused":
            bisect.insort(self.refusals.setdefault(f.x, []), (number, f.rst.time, f.rst), key=lambda r: r[0])
        elif f.family == "abort" and f.x_role == "server" and f.x_data == 0:
            times = self.silent_server_resets.setdefault(f.x, [])
            bisect.insort(times, f.rst.time)
        if f.family == "abort":
            bisect.insort(self.aborts.setdefault(f.x[0], []), (f.rst.time, number, f), key=lambda e: e[:2])
        elif f.family == "no-socket":
            bisect.insort(self.bare_resets.setdefault(f.x, []), BareReset(number, f.rst, f.answered, f.y),
                          key=lambda r: r.number)

    def _note_probe(self, conn: Connection) -> None:
        """A connection whose client sent nothing but SYNs (and RSTs): a probe of its server's port."""
        client, server = conn.client, conn.server
        if client is None or server is None:
            return
        if all((p.is_syn and not p.has_ack) or p.is_rst for p in conn.pk if (p.src, p.sport) == client):
            self.probed.setdefault((client[0], server[0]), set()).add(server[1])

    def ports_probed(self, client: str, server: str) -> int:
        """How many ports of `server` the connections noted so far probed from `client` (SYNs only)."""
        return len(self.probed.get((client, server), ()))

    def forget_aborts_before(self, t: float) -> None:
        """Let go of the abortive resets no verdict still to come can pair with (before `t`)."""
        for addr, times in list(self.aborts.items()):
            cut = bisect.bisect_left(times, t, key=lambda e: e[0])
            if cut == len(times):
                del self.aborts[addr]
            elif cut:
                del times[:cut]

    def forget_before(self, t: float) -> None:
        """Let go of the refusals, no-socket resets and listener batches before `t`: the verdicts
        still to come are of connections that began after it, and look only within their own time."""
        for server, refused in list(self.refusals.items()):
            kept = [r for r in refused if r[1] >= t]
            if kept:
                refused[:] = kept
            else:
                del self.refusals[server]
        for end, bare in list(self.bare_resets.items()):
            later = [r for r in bare if r.rst.time >= t]
            if later:
                bare[:] = later
            else:
                del self.bare_resets[end]
        for server, times in list(self.silent_server_resets.items()):
            cut = bisect.bisect_left(times, t - BATCH_WINDOW)
            if cut == len(times):
                del self.silent_server_resets[server]
            elif cut:
                del times[:cut]

    def addresses(self) -> tuple[set[str], set[str]]:
        """(addresses the capture host sent non-RST packets from, addresses it forwarded for)."""
        return self.survey.own - self.survey.transit, self.survey.transit

    def profile(self, addr: str, direction: str | None) -> Profile:
        """How `addr`'s non-RST packets look in this direction (empty if it sent none): only
        packets of connections seen both ways, and SYN/ACKs, which a host's own stack sends."""
        found = self.survey.profiles.get((addr, direction))
        return _NO_PACKETS if found is None else found

    def shared_counter(self, rst: Packet) -> IdReset | None:
        """Another address's RST in the same chain of consecutive IP IDs as `rst`, when RSTs
        "from" two or more addresses continue one counter (one box forged them all)."""
        runs = self.survey.id_runs
        runs.drain()
        return runs.found.get(rst.index)

    def opened_by(self, end: Addr) -> list[Connection]:
        """The connections whose first packet is a SYN from `end` (an address and port): those it
        opened. Kept only for the ends the survey found sending a RST on a connection it never
        saw open (`Survey.twin_ends`), the only ones asked about."""
        return self.opened.get(end, [])

    def aborts_near(self, addr: str, t: float, window: float) -> list[Facts]:
        """The abortive resets `addr` sent within `window` seconds of `t`."""
        times = self.aborts.get(addr, [])
        lo = bisect.bisect_left(times, t - window, key=lambda e: e[0])
        hi = bisect.bisect_right(times, t + window, key=lambda e: e[0])
        return [f for _, _, f in times[lo:hi]]

    def icmp_about(self, conn: Connection) -> list[IcmpError]:
        """The ICMP errors that quote a segment of this connection."""
        p = conn.raw[0]
        return self.icmp.get(frozenset(((p.src, p.sport), (p.dst, p.dport))), [])

    def refusal_between(self, server: Addr, lo: float, hi: float) -> Packet | None:
        """A SYN to `server` refused (closed-port shape) in the interval (lo, hi]."""
        for _conn, t, p in self.refusals.get(server, ()):
            if lo < t <= hi:
                return p
        return None

    def batch_size(self, server: Addr, t: float) -> int:
        """How many silent-server resets of this listener fall within BATCH_WINDOW of t."""
        times = self.silent_server_resets.get(server, [])
        lo = bisect.bisect_left(times, t - BATCH_WINDOW)
        hi = bisect.bisect_right(times, t + BATCH_WINDOW)
        return hi - lo

