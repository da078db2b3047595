"""Explain the resets in any capture: which catalogue cause each RST matches, with the evidence.

A pure analysis module: packets in, dataclasses out (no rich, no Docker, no
printing). For every TCP connection of a capture that holds a RST it names
who sent the first RST and the cause it matches, with the packets that
decided it and one sentence for a developer. Where the wire cannot decide
between causes it says `ambiguous` and lists the candidates with what would
tell them apart. Connections that failed without any RST (a SYN never
answered) are reported as `silent-drop`.

How the causes look on the wire (Linux; other stacks agree where noted):

* `closed-port`: a SYN answered by `R.` (seq 0, ack = ISN+1) and no SYN/ACK:
  tcp_v4_send_reset for a segment without ACK.
* `firewall-reset`: a middlebox forging the same `R.` (iptables REJECT
  --reject-with tcp-reset builds it exactly like the kernel does), or `R` with
  seq = the segment's ack on an established connection. Only capture-point
  evidence separates it from the endpoint's own RST: a router capture where the
  RST leaves the capture host while it forwards that traffic, or (when packets
  carry `ttl`) a TTL that differs from the endpoint's other packets.
* `connect-timeout`: SYN, a late SYN/ACK, then `R` without ACK (seq = ISN+1)
  from the client at once: the client closed its SYN-SENT socket, so the
  SYN/ACK found no socket.
* `unread-data-close` / `linger-abort`: `R.` (seq = snd_nxt, ack = rcv_nxt)
  instead of a FIN, from tcp_send_active_reset: close() with unread received
  data, or close() with SO_LINGER {1, 0}. Both look the same on the wire; only
  "nothing was ever received" rules out the first.
* `listener-close-backlog`: `R.` from the passive side of an established
  connection whose application never sent anything: closing a listener resets
  every connection still in its accept queue (several at the same instant is
  what marks it).
* `data-after-close`: the side that sent FIN receives new data and answers
  `R` (no ACK, seq = that segment's ack): data for a closed socket.
* `keepalive-timeout`: keepalive probes (`.`, seq = snd_una - 1, length 0 or
  1) unanswered, then `R.` from the prober.
* `retransmission-timeout`: the same segment retransmitted with growing gaps
  and never acknowledged; the sender gives up (Linux silently) and resets, or
  answers the peer's later segment with `R`.
* `peer-restart`: on an established connection, a segment answered by `R`
  without ACK (seq = the segment's ack) from a host that never sent FIN: it
  no longer knows the connection.

Capture-point evidence comes from Linux cooked captures (SLL/SLL2), which
record whether a frame came in or went out: a frame seen in and then out is a
forwarded copy (the capture host routes it), a frame that only goes out was
sent by the capture host itself.
"""
from __future__ import annotations

import bisect
from itertools import pairwise
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from .capture import Capture, Packet, format_packet, read_capture

__all__ = [
    "AMBIGUOUS",
    "CAUSES",
    "SILENT_DROP",
    "UNKNOWN",
    "Candidate",
    "CaptureExplanation",
    "Evidence",
    "Explanation",
    "endpoint",
    "explain_capture",
    "explain_file",
    "explain_packets",
]

CAUSES = (
    "closed-port", "connect-timeout", "unread-data-close", "data-after-close", "linger-abort",
    "listener-close-backlog", "keepalive-timeout", "retransmission-timeout", "peer-restart",
    "firewall-reset",
)
AMBIGUOUS = "ambiguous"
UNKNOWN = "unknown"
SILENT_DROP = "silent-drop"

_MOD = 0xFFFFFFFF
COPY_WINDOW = 0.005       # s: the same segment seen twice this close together is one packet copied
BATCH_WINDOW = 0.010      # s: resets of one listener this close together come from one close()
SYN_GRACE = 1.0           # s: a lone SYN this long before the capture's end counts as unanswered
MAX_EVIDENCE = 8


# --- results -------------------------------------------------------------------


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

    cause: str                        # a CAUSES id, AMBIGUOUS, UNKNOWN or SILENT_DROP
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

    def as_dict(self, t0: float = 0.0) -> dict[str, Any]:
        """A JSON-ready mapping; times in seconds relative to `t0`. An evidence entry's
        `packet` is the packet's position among the file's TCP packets (0-based)."""
        return {
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
        }


@dataclass(frozen=True, slots=True)
class CaptureExplanation:
    """Every explained connection of one capture."""

    path: str
    packets: int                      # TCP packets in the file
    other: int                        # frames that were not TCP
    truncated: bool                   # the file ended mid-record: read up to the cut
    connections: int                  # TCP connections in the file
    t0: float                         # time of the first packet (0.0 if none)
    explanations: tuple[Explanation, ...]

    def as_json(self) -> list[dict[str, Any]]:
        """The `--json` records of this file: one per explained connection."""
        return [{"file": self.path, "capture_truncated": self.truncated, **e.as_dict(self.t0)}
                for e in self.explanations]


# --- public functions ------------------------------------------------------------


def explain_file(path: str) -> CaptureExplanation:
    """Read a capture and explain it; raises CaptureError for a file that is not one."""
    return explain_capture(read_capture(path))


def explain_capture(capture: Capture, local_addresses: Iterable[str] = ()) -> CaptureExplanation:
    """Explain one parsed capture."""
    packets = capture.packets
    t0 = packets[0].time if packets else 0.0
    conns = _connections(packets)
    explanations = _explain(conns, t0, frozenset(local_addresses))
    return CaptureExplanation(capture.path, len(packets), capture.other, capture.truncated,
                              len(conns), t0, tuple(explanations))


def explain_packets(packets: Sequence[Packet], t0: float | None = None,
                    local_addresses: Iterable[str] = ()) -> list[Explanation]:
    """Explain a sequence of packets (in capture order).

    `local_addresses` are addresses the capture host is known to own (optional):
    a RST the capture host sent with another address as its source is forged.
    """
    if t0 is None:
        t0 = packets[0].time if packets else 0.0
    return _explain(_connections(packets), t0, frozenset(local_addresses))


def endpoint(addr: str, port: int) -> str:
    """`10.0.0.1:80`, `[fd00::1]:80`."""
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


# --- sequence arithmetic -------------------------------------------------------


def _after(a: int, b: int) -> bool:
    """a is later than b in sequence space."""
    return 0 < ((a - b) & _MOD) < 0x80000000


def _end(p: Packet) -> int:
    """The sequence number just past a segment (SYN and FIN count one)."""
    return (p.seq + p.length + ("S" in p.flags) + ("F" in p.flags)) & _MOD


# --- connections -----------------------------------------------------------------

Addr = tuple[str, int]


class _Conn:
    """One connection: its packets (forwarding copies folded) and what they say."""

    __slots__ = ("raw", "pk", "forwarded", "client", "server", "client_isn", "server_isn",
                 "first_rst", "rst_pos")

    def __init__(self, raw: list[Packet]) -> None:
        self.raw = raw
        self.pk: list[Packet] = []
        self.forwarded: set[int] = set()     # indexes of kept packets seen in and then out
        self.rst_pos = -1
        self.client: Addr | None = None
        self.server: Addr | None = None
        self.client_isn: int | None = None
        self.server_isn: int | None = None
        self.first_rst: Packet | None = None

    def prepare(self) -> None:
        """Fold copies, find the roles and the first RST (done only for connections of interest)."""
        if self.pk:
            return
        self.pk, self.forwarded = _fold_copies(self.raw)
        for i, p in enumerate(self.pk):
            f = p.flags
            if "S" in f and self.client is None and "." not in f:
                self.client, self.server = (p.src, p.sport), (p.dst, p.dport)
                self.client_isn = p.seq
            elif "S" in f and "." in f and self.server_isn is None:
                if self.client is None:
                    self.client, self.server = (p.dst, p.dport), (p.src, p.sport)
                self.server_isn = p.seq
            if "R" in f and self.first_rst is None:
                self.first_rst = p
                self.rst_pos = i


def _connections(packets: Sequence[Packet]) -> list[_Conn]:
    """Group packets by 4-tuple; a SYN with a new sequence number starts a new connection
    (the rule capture.py uses for relative sequence numbers)."""
    current: dict[tuple, list[Packet]] = {}
    isn: dict[tuple, int] = {}
    order: list[list[Packet]] = []
    for p in packets:
        src, dst = p.src, p.dst
        if src < dst or (src == dst and p.sport <= p.dport):
            key = (src, p.sport, dst, p.dport)
        else:
            key = (dst, p.dport, src, p.sport)
        cur = current.get(key)
        f = p.flags
        if "S" in f and "." not in f and isn.get(key) != p.seq:
            isn[key] = p.seq
            cur = None
        if cur is None:
            cur = current[key] = []
            order.append(cur)
        cur.append(p)
    return [_Conn(lst) for lst in order]


def _fold_copies(raw: list[Packet]) -> tuple[list[Packet], set[int]]:
    """Drop the second sighting of a segment a capture saw twice (`-i any` on a router sees
    a forwarded segment coming in and going out; a bridge floods a copy back): the same
    header within COPY_WINDOW with a different direction or interface. Returns the kept
    packets and the indexes of those that were forwarded (in, then out)."""
    if raw[0].direction is None and raw[0].ifindex is None and all(
            p.direction is None and p.ifindex is None for p in raw):
        return raw, set()
    kept: list[Packet] = []
    forwarded: set[int] = set()
    seen: dict[tuple, Packet] = {}
    for p in raw:
        sig = (p.src, p.sport, p.flags, p.seq, p.ack, p.length, p.window)
        q = seen.get(sig)
        if q is not None and p.time - q.time <= COPY_WINDOW and (
                q.direction != p.direction or q.ifindex != p.ifindex):
            if q.direction == "in" and p.direction == "out":
                forwarded.add(q.index)
            continue
        seen[sig] = p
        kept.append(p)
    return kept, forwarded


# --- per-connection facts ------------------------------------------------------------


@dataclass(slots=True)
class _Facts:
    """What the packets before the first RST say about the resetting side X and its peer Y."""

    conn: _Conn
    rst: Packet
    x: Addr
    y: Addr
    before: list[Packet]
    xs: list[Packet]
    ys: list[Packet]
    x_role: str | None                 # "client", "server" or None
    handshake: bool                    # SYN and SYN/ACK seen, and the connection got established
    x_data: int                        # payload bytes X sent
    y_data_acked: int                  # payload bytes of Y that X's RST acknowledges
    y_unanswered: int                  # of those, bytes after X's last data segment
    x_fin: Packet | None
    origin: str | None                 # "here": the capture host sent the RST; "through": forwarded; "in"
    shape: str = ""                    # filled by _shape()
    answered: Packet | None = None     # the segment of Y a no-ACK RST answers


def _facts(conn: _Conn) -> _Facts:
    rst = conn.first_rst
    assert rst is not None
    x: Addr = (rst.src, rst.sport)
    y: Addr = (rst.dst, rst.dport)
    before = conn.pk[:conn.rst_pos]
    xs = [p for p in before if p.src == x[0] and p.sport == x[1]]
    ys = [p for p in before if not (p.src == x[0] and p.sport == x[1])]
    x_role = None if conn.client is None else ("client" if x == conn.client else "server")
    handshake = False
    if conn.client_isn is not None and conn.server_isn is not None:
        # the client's ACK of the SYN/ACK, or a RST.ACK that acknowledges the peer's SYN from
        # past its own (only a synchronized socket sends one; the ACK may be lost from the capture)
        x_isn, y_isn = ((conn.client_isn, conn.server_isn) if x == conn.client
                        else (conn.server_isn, conn.client_isn))
        handshake = (any("S" not in p.flags and "." in p.flags for p in before
                         if (p.src, p.sport) == conn.client)
                     or ("." in rst.flags and not _after(x_isn + 1, rst.seq)
                         and not _after(y_isn + 1, rst.ack) and rst.seq != x_isn))
    x_data = sum(p.length for p in xs)
    y_data_acked = y_unanswered = 0
    last_x_data = max((p.time for p in xs if p.length), default=None)
    rst_acks = "." in rst.flags
    for p in ys:
        if p.length and (not rst_acks or not _after(_end(p), rst.ack)):
            y_data_acked += p.length
            if last_x_data is None or p.time > last_x_data:
                y_unanswered += p.length
    x_fin = next((p for p in xs if "F" in p.flags), None)
    # Copies are folded onto their first sighting, so a kept outgoing packet is one the
    # capture host sent itself, and a forwarded one is kept as its incoming copy.
    if rst.index in conn.forwarded:
        origin = "through"
    elif rst.direction == "out":
        origin = "here"
    elif rst.direction in ("in", "other"):
        origin = "in"
    else:
        origin = None
    return _Facts(conn, rst, x, y, before, xs, ys, x_role, handshake, x_data, y_data_acked,
                  y_unanswered, x_fin, origin)


def _retransmissions(f: _Facts) -> list[Packet]:
    """X's transmissions of its first unacknowledged segment, when it sent it twice or more
    and Y never acknowledged it (before the RST)."""
    una: int | None = None                  # the highest acknowledgment from Y
    for p in f.ys:
        if "." in p.flags and (una is None or _after(p.ack, una)):
            una = p.ack
    segs = [p for p in f.xs if (p.length or "F" in p.flags) and "S" not in p.flags]
    if not segs:
        return []
    if una is None:
        una = segs[-1].seq
    train = [p for p in segs if p.seq == una]
    if len(train) < 2:
        return []
    first = train[0].time
    if any("." in p.flags and _after(p.ack, una) for p in f.ys if p.time > first):
        return []
    return train


def _keepalive_probes(f: _Facts) -> list[Packet]:
    """X's trailing keepalive probes: pure ACKs at snd_una - 1 (length 0 or 1), after the
    last data, with no data from Y after the first one and a non-zero peer window."""
    snd_nxt: int | None = None
    probes: list[Packet] = []
    for p in f.xs:
        is_probe = (snd_nxt is not None and p.flags == "." and p.length <= 1
                    and p.seq == (snd_nxt - 1) & _MOD)
        if is_probe:
            probes.append(p)
        else:
            if p.length or "F" in p.flags or "S" in p.flags:
                probes = []
        e = _end(p)
        if snd_nxt is None or _after(e, snd_nxt):
            snd_nxt = e
    if not probes:
        return []
    first = probes[0].time
    if any(p.length for p in f.ys if p.time > first):
        return []
    windows = [p.window for p in f.ys if p.time < first]
    if windows and windows[-1] == 0:
        return []          # zero-window probes, not keepalive
    return probes


# --- capture-wide context ---------------------------------------------------------


class _Context:
    """Evidence that spans connections: refused SYNs, listener batches, the capture host's
    own and forwarded addresses, TTLs."""

    def __init__(self, conns: list[_Conn], t0: float, local: frozenset[str]) -> None:
        self.conns = conns
        self.t0 = t0
        self.user_local = local
        self.refusals: dict[Addr, list[tuple[float, Packet]]] = {}
        self.silent_server_resets: dict[Addr, list[float]] = {}
        self._addresses: tuple[set[str], set[str]] | None = None
        self._ttls: dict[tuple[str, str | None], set[int]] | None = None

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
                    elif p.direction == "out" and "R" not in p.flags:
                        own.add(p.src)
            self._addresses = (own - transit, transit)
        return self._addresses

    def ttls(self, addr: str, direction: str | None) -> set[int]:
        """TTLs of the non-RST packets from addr seen in this direction."""
        if self._ttls is None:
            table: dict[tuple[str, str | None], set[int]] = {}
            for c in self.conns:
                for p in c.raw:
                    ttl = getattr(p, "ttl", None)
                    if ttl is not None and "R" not in p.flags:
                        table.setdefault((p.src, p.direction), set()).add(ttl)
            self._ttls = table
        return self._ttls.get((addr, direction), set())

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


# --- the analysis ------------------------------------------------------------------


def _explain(conns: list[_Conn], t0: float, local: frozenset[str]) -> list[Explanation]:
    ctx = _Context(conns, t0, local)
    with_rst: list[_Facts] = []
    failed: list[_Conn] = []
    end_time = max((c.raw[-1].time for c in conns), default=t0)
    for c in conns:
        if any("R" in p.flags for p in c.raw):
            c.prepare()
            f = _facts(c)
            _shape(f)
            with_rst.append(f)
            if f.shape == "refused":
                ctx.refusals.setdefault(f.x, []).append((f.rst.time, f.rst))
            elif f.shape == "abort" and f.x_role == "server" and f.x_data == 0:
                ctx.silent_server_resets.setdefault(f.x, []).append(f.rst.time)
        elif all("S" in p.flags and "." not in p.flags for p in c.raw):
            failed.append(c)
    for times in ctx.silent_server_resets.values():
        times.sort()
    out: list[Explanation] = []
    for f in with_rst:
        out.append(_classify(f, ctx))
    for c in failed:
        e = _silent_drop(c, ctx, end_time)
        if e is not None:
            out.append(e)
    out.sort(key=lambda e: e.start)
    return out


def _shape(f: _Facts) -> None:
    """Which family of RST this is, from the RST and the packets before it."""
    rst, conn = f.rst, f.conn
    has_ack = "." in rst.flags
    y_syns = [p for p in f.ys if "S" in p.flags and "." not in p.flags]
    x_synacks = [p for p in f.xs if "S" in p.flags]
    if y_syns and not x_synacks and has_ack and any(rst.ack == (p.seq + 1) & _MOD for p in y_syns):
        f.shape = "refused"
        return
    x_syn = [p for p in f.xs if "S" in p.flags and "." not in p.flags]
    y_synacks = [p for p in f.ys if "S" in p.flags and "." in p.flags]
    x_acked_handshake = any("S" not in p.flags and "." in p.flags for p in f.xs)
    if x_syn and y_synacks and not has_ack and not x_acked_handshake:
        f.shape = "late-synack"
        f.answered = next((p for p in y_synacks if p.ack == rst.seq), y_synacks[-1])
        return
    if not f.before:
        f.shape = "lonely"
        return
    if not has_ack:
        answered = [p for p in f.ys if "." in p.flags and p.ack == rst.seq]
        f.answered = answered[-1] if answered else None
        f.shape = "no-socket"
        return
    if conn.client is not None and not f.handshake:
        f.shape = "other"
        return
    f.shape = "abort"


def _classify(f: _Facts, ctx: _Context) -> Explanation:
    forged, forged_why = _forged(f, ctx)
    if forged:
        return _firewall(f, ctx, forged_why)
    if f.shape == "refused":
        return _refused(f, ctx)
    if f.shape == "late-synack":
        return _late_synack(f, ctx)
    if f.shape == "no-socket":
        return _no_socket(f, ctx)
    if f.shape == "abort":
        return _abort(f, ctx)
    return _unknown(f, ctx)


# --- evidence helpers ---------------------------------------------------------------


class _Builder:
    """Collects evidence and notes for one explanation."""

    def __init__(self, f: _Facts | None, ctx: _Context, conn: _Conn | None = None) -> None:
        self.f = f
        self.ctx = ctx
        self.conn = conn if conn is not None else f.conn if f is not None else None
        self.evidence: list[Evidence] = []
        self.notes: list[str] = []

    def add(self, p: Packet | None, why: str) -> None:
        if p is None or any(e.packet is p for e in self.evidence):
            return
        self.evidence.append(Evidence(p, format_packet(p, t0=self.ctx.t0), why))

    def done(self, cause: str, sentence: str, candidates: Sequence[Candidate]) -> Explanation:
        conn = self.conn
        assert conn is not None
        f = self.f
        ev = sorted(self.evidence, key=lambda e: e.packet.index)
        if len(ev) > MAX_EVIDENCE:
            ev = ev[:2] + ev[-(MAX_EVIDENCE - 2):]
        client: str | None = None
        server: str | None = None
        if conn.client is not None and conn.server is not None:
            client, server = endpoint(*conn.client), endpoint(*conn.server)
            ends = (client, server)
        else:
            first = conn.pk[0] if conn.pk else conn.raw[0]
            ends = (endpoint(first.src, first.sport), endpoint(first.dst, first.dport))
        resets = sum(1 for p in conn.pk if "R" in p.flags) if conn.pk else 0
        notes = list(self.notes)
        if f is not None and resets > 1:
            notes.append(f"{resets - 1} more RST{'s' if resets > 2 else ''} followed the first "
                         "(answers to segments still on their way)")
        return Explanation(
            cause=cause, sentence=sentence, client=client, server=server, endpoints=ends,
            rst_from=endpoint(*f.x) if f is not None else None,
            rst_side=f.x_role if f is not None else None,
            candidates=tuple(candidates), evidence=tuple(ev), notes=tuple(notes),
            start=(conn.pk or conn.raw)[0].time, rst_time=f.rst.time if f is not None else None,
            packets=len(conn.pk or conn.raw), resets=resets)


def _origin_note(f: _Facts, b: _Builder) -> None:
    x = endpoint(*f.x)
    if f.origin == "here":
        b.notes.append(f"the RST left the host this capture was taken on (outgoing, not forwarded): "
                       f"that host is {f.x[0]} itself or a firewall answering in its name; naming the "
                       "capture host's address decides which")
    elif f.origin == "through":
        b.notes.append(f"the capture host forwarded this RST: it came from beyond it ({x}'s side)")


def _secs(dt: float) -> str:
    return f"{dt * 1000:.1f} ms" if dt < 1 else f"{dt:.2f} s"


def _forged(f: _Facts, ctx: _Context) -> tuple[bool, str]:
    """Is there capture-point or TTL evidence that a middlebox sent this RST?"""
    rst = f.rst
    if f.origin == "here":
        if f.conn.forwarded:
            return True, ("this capture host forwarded the connection's other packets but sent the "
                          f"RST itself, with {f.x[0]} as its source")
        own, transit = ctx.addresses()
        if f.x[0] in transit:
            return True, (f"this capture host routes traffic for {f.x[0]} (it forwarded its packets) "
                          "but sent the RST itself, in its name")
        if ctx.user_local and f.x[0] not in ctx.user_local:
            return True, (f"the RST left the capture host, whose addresses are "
                          f"{', '.join(sorted(ctx.user_local))}, with {f.x[0]} as its source")
    ttl = getattr(rst, "ttl", None)
    if ttl is not None:
        seen = ctx.ttls(f.x[0], rst.direction)
        if seen and ttl not in seen:
            return True, (f"the RST arrived with TTL {ttl}, while {f.x[0]}'s other packets arrive with "
                          f"TTL {', '.join(map(str, sorted(seen)))}: it was sent from a different "
                          "number of hops away")
    return False, ""


def _sent_by_endpoint(f: _Facts, ctx: _Context) -> str:
    """Evidence that the endpoint itself (not a middlebox) sent the RST, or ''."""
    if f.origin == "here":
        if f.x[0] in ctx.user_local:
            return f"the capture was taken on {f.x[0]} and the RST left it"
        own, _ = ctx.addresses()
        if f.x[0] in own:
            return (f"the RST left the capture host, which also sends {f.x[0]}'s ordinary packets: "
                    f"the capture was taken on {f.x[0]} itself")
    ttl = getattr(f.rst, "ttl", None)
    if ttl is not None and ttl in ctx.ttls(f.x[0], f.rst.direction):
        return f"the RST's TTL ({ttl}) matches {f.x[0]}'s other packets"
    return ""


def _firewall(f: _Facts, ctx: _Context, why: str) -> Explanation:
    b = _Builder(f, ctx)
    x = endpoint(*f.x)
    if f.shape == "refused":
        syn = next(p for p in f.ys if "S" in p.flags)
        b.add(syn, "the SYN; it was not forwarded to its destination" if f.origin == "here"
              else "the SYN")
        what = f"refused the connection to {x} in its name"
    else:
        target = f.answered or (f.ys[-1] if f.ys else None)
        b.add(target, "the segment the firewall stopped")
        what = f"reset the connection with {x} in its name"
    b.add(f.rst, "the forged RST: " + why)
    sentence = (f"A firewall or router between the hosts {what}: {why}. The application sees "
                "ECONNREFUSED or ECONNRESET as if the peer had sent it.")
    return b.done("firewall-reset", sentence, [Candidate("firewall-reset", why, _TELL["firewall-reset"])])


# --- the families -----------------------------------------------------------------

_TELL = {
    "closed-port": "a capture on the server showing the SYN arriving and the RST leaving it, or a RST "
                   "whose TTL matches the server's other packets; `ss -ltn` on the server shows no "
                   "listener on the port",
    "firewall-reset": "a capture on the host the RST claims to come from, with no trace of the segment "
                      "(the firewall stopped it), or a RST whose TTL differs from that host's other "
                      "packets (a middlebox is a different number of hops away); the firewall's REJECT "
                      "rule counters",
    "unread-data-close": "whether the application read everything before close() (strace, its logs); "
                         "nstat TcpExtTCPAbortOnClose counts these resets",
    "linger-abort": "whether the application sets SO_LINGER {1, 0} (or aborts the socket) before "
                    "close(); nstat TcpExtTCPAbortOnData counts linger-0 resets",
    "listener-close-backlog": "whether the application ever accepted the connection; closing a "
                              "listener resets every queued connection in the same instant, and "
                              "counts in neither TcpExtTCPAbortOnClose nor TcpExtTCPAbortOnData",
    "peer-restart": "the host's or service's restart time (uptime, logs), or a capture on that host "
                    "showing the segment arriving and the RST leaving it",
    "retransmission-timeout": "a capture on the resetting host's side showing its unanswered "
                              "retransmissions; nstat TcpExtTCPAbortOnTimeout on that host",
    "keepalive-timeout": "the probes in a capture on the prober's side; nstat TcpExtTCPAbortOnTimeout",
    "connect-timeout": "the client's connect timeout (shorter than the SYN/ACK's delay)",
    "data-after-close": "the closing side's application log: it closed before the peer stopped sending",
}


def _refused(f: _Facts, ctx: _Context) -> Explanation:
    b = _Builder(f, ctx)
    syns = [p for p in f.ys if "S" in p.flags]
    x = endpoint(*f.x)
    b.add(syns[0], "the SYN" + (f" (sent {len(syns)} times)" if len(syns) > 1 else ""))
    if len(syns) > 1:
        b.add(syns[-1], "the last SYN")
    b.add(f.rst, f"RST with ACK acknowledging the SYN (ack = ISN+1), and no SYN/ACK before it: "
                 f"no socket accepted the connection on {x}")
    by_endpoint = _sent_by_endpoint(f, ctx)
    if by_endpoint:
        sentence = (f"Nothing was listening on {x}: its kernel answered the SYN with RST itself "
                    f"({by_endpoint}), so connect() failed at once with ECONNREFUSED.")
        return b.done("closed-port", sentence,
                      [Candidate("closed-port", by_endpoint, _TELL["closed-port"])])
    _origin_note(f, b)
    sentence = (f"The SYN to {x} was refused with a RST in {f.x[0]}'s name (connect() fails with "
                "ECONNREFUSED): either nothing listens on that port, or a firewall on the way "
                "rejected the SYN; a capture at this point alone cannot tell which.")
    return b.done(AMBIGUOUS, sentence, [
        Candidate("closed-port", f"the usual reason: no socket listens on {x}, and a refusing kernel "
                                 "sends exactly this RST (seq 0, ack = ISN+1)", _TELL["closed-port"]),
        Candidate("firewall-reset", "iptables REJECT --reject-with tcp-reset (and most firewalls) "
                                    "forges the identical RST in the server's name",
                  _TELL["firewall-reset"]),
    ])


def _late_synack(f: _Facts, ctx: _Context) -> Explanation:
    b = _Builder(f, ctx)
    syns = [p for p in f.xs if "S" in p.flags]
    synack = f.answered
    assert synack is not None
    x = endpoint(*f.x)
    isn = syns[0].seq
    b.add(syns[0], "the client's SYN" + (f" (sent {len(syns)} times)" if len(syns) > 1 else ""))
    if len(syns) > 1:
        b.add(syns[-1], "its last retransmission")
    delay = synack.time - syns[0].time
    b.add(synack, f"the SYN/ACK, {_secs(delay)} after the SYN")
    if synack.ack != (isn + 1) & _MOD:
        b.add(f.rst, "RST without ACK taking its seq from the SYN/ACK's ack")
        sentence = (f"The SYN/ACK acknowledged a sequence number {x} never sent (a stale answer to an "
                    "earlier connection on the same ports?), so the client's kernel rejected it with RST.")
        return b.done(UNKNOWN, sentence, [])
    answer = f.rst.time - synack.time
    b.add(f.rst, f"RST without ACK, seq = ISN+1, {_secs(answer)} after the SYN/ACK: no socket "
                 "was waiting for it any more")
    why = (f"the SYN/ACK arrived {_secs(delay)} after the SYN and the client answered it with a bare "
           "RST: the connecting socket had been closed")
    sentence = (f"The client {x} gave up connecting before the server answered (its connect timeout "
                f"ran out and it closed the socket); the SYN/ACK arrived {_secs(delay)} after the "
                "SYN, found no socket, and the client's kernel answered it with RST.")
    if answer > 0.2:
        b.notes.append(f"the RST came {_secs(answer)} after the SYN/ACK, not at once: the socket may "
                       "have been closed only then")
    return b.done("connect-timeout", sentence, [Candidate("connect-timeout", why, _TELL["connect-timeout"])])


def _no_socket(f: _Facts, ctx: _Context) -> Explanation:
    """`R` without ACK on an established connection: X had no socket (or a closed one) for it."""
    b = _Builder(f, ctx)
    x, y = endpoint(*f.x), endpoint(*f.y)
    seg = f.answered
    # data-after-close: X sent FIN, then data came from Y
    if f.x_fin is not None:
        data_after = [p for p in f.ys if p.length and p.time > f.x_fin.time]
        if data_after:
            b.add(f.x_fin, f"{x} closes: FIN")
            fin_ack = next((p for p in f.ys if "." in p.flags and p.time > f.x_fin.time
                            and p.ack == _end(f.x_fin)), None)
            b.add(fin_ack, f"{y} acknowledges the FIN")
            b.add(data_after[0], f"{y} keeps sending after the FIN")
            if seg is not None and seg is not data_after[0]:
                b.add(seg, "the segment the RST answers")
            b.add(f.rst, "RST without ACK, seq = the segment's ack: the socket was closed")
            why = f"{x} sent FIN, then {y}'s data arrived and was answered with a bare RST"
            sentence = (f"{x} had already closed the connection (FIN {_secs(data_after[0].time - f.x_fin.time)} "
                        f"earlier) and {y} kept sending; data for a closed socket is answered with RST, "
                        "and the sender's next call fails with ECONNRESET or EPIPE.")
            return b.done("data-after-close", sentence,
                          [Candidate("data-after-close", why, _TELL["data-after-close"])])
    train = _retransmissions(f)
    if train:
        return _retrans_verdict(f, ctx, b, train)
    probes = _keepalive_probes(f)
    if probes:
        return _keepalive_verdict(f, ctx, b, probes)
    # the host did not know the connection
    last_x = f.xs[-1] if f.xs else None
    b.add(last_x, f"the last packet from {x} before the reset")
    if seg is not None:
        b.add(seg, f"{y}'s segment")
        b.add(f.rst, "RST without ACK, seq = that segment's ack: the answer to a segment for "
                     "a connection the host does not know")
    else:
        b.add(f.rst, "RST without ACK")
        b.notes.append("the RST's seq matches no segment's ack in the capture")
    if f.x_fin is not None:
        b.notes.append(f"{x} had sent FIN before: its closed socket may have been gone")
    proof = []
    by_endpoint = _sent_by_endpoint(f, ctx)
    if by_endpoint:
        proof.append(by_endpoint)
    lo = last_x.time if last_x is not None else f.conn.pk[0].time
    refusal = ctx.refusal_between(f.x, lo, f.rst.time)
    if refusal is not None:
        b.add(refusal, f"meanwhile a new connection to {x} is refused: nothing listened there")
        proof.append(f"a new connection to {x} was refused in between, so the service was down")
    if f.origin == "here":
        old = [p.ifindex for p in f.xs if p.ifindex is not None and p.direction == "out"]
        if old and f.rst.ifindex is not None and f.rst.ifindex != old[-1]:
            proof.append(f"the host's interface changed (index {old[-1]} to {f.rst.ifindex}): its "
                         "network stack was recreated")
    idle = 0.0
    if seg is not None:
        earlier = [p.time for p in f.before if p.time < seg.time]
        idle = seg.time - earlier[-1] if earlier else 0.0
    if proof:
        why = "; ".join(proof)
        sentence = (f"{x} had forgotten the connection (the host or its service restarted): {y}'s "
                    "segment was answered with a bare RST, the answer to a segment for an unknown "
                    "connection, and no FIN had come from it.")
        return b.done("peer-restart", sentence, [Candidate("peer-restart", why, _TELL["peer-restart"])])
    _origin_note(f, b)
    idle_hint = (f"; the connection was idle for {_secs(idle)} before, long enough for a NAT or "
                 "load-balancer idle timeout" if idle > 60 else "")
    cands = [Candidate("peer-restart", f"{x} answered {y}'s segment as if it had never heard of the "
                                       "connection, and it had sent no FIN", _TELL["peer-restart"])]
    if f.origin != "here":
        cands.append(Candidate("retransmission-timeout",
                               f"{x} may have given up on the connection earlier after retransmissions "
                               "that never reached this capture point; then it answers this way too",
                               _TELL["retransmission-timeout"]))
    cands.append(Candidate("firewall-reset", "a firewall rejecting an established flow (iptables REJECT "
                                             "--reject-with tcp-reset) forges exactly this RST" + idle_hint,
                           _TELL["firewall-reset"]))
    sentence = (f"{x} answered {y}'s segment with a bare RST, as a host does for a connection it does not "
                "know: it restarted, or gave up on the connection earlier, or a firewall on the way "
                "forged the RST; this capture alone cannot tell which.")
    return b.done(AMBIGUOUS, sentence, cands)


def _retrans_verdict(f: _Facts, ctx: _Context, b: _Builder, train: list[Packet]) -> Explanation:
    x, y = endpoint(*f.x), endpoint(*f.y)
    gaps = [q.time - p.time for p, q in pairwise(train)]
    growing = all(g2 >= g1 * 0.8 for g1, g2 in pairwise(gaps))
    b.add(train[0], f"{x} sends a segment")
    for p in train[1:-1]:
        b.add(p, "retransmitted, unanswered")
    b.add(train[-1], f"retransmission {len(train) - 1}, still unanswered")
    later = [p for p in f.ys if p.time > train[-1].time]
    gap_text = ", ".join(_secs(g) for g in gaps)
    if "." in f.rst.flags:
        b.add(f.rst, f"{x} gives up and resets the connection")
        tail = "and then reset the connection itself"
    else:
        seg = f.answered or (later[-1] if later else None)
        b.add(seg, f"{y}'s later segment")
        b.add(f.rst, "RST without ACK: the connection was already gone on this side")
        tail = (f"gave up on the connection (ETIMEDOUT for the application, silently on the wire), and "
                f"answered {y}'s later segment with RST")
    why = (f"the same segment was sent {len(train)} times ({gap_text} apart"
           f"{', growing' if growing else ''}) and never acknowledged")
    sentence = (f"{x} retransmitted the same segment {len(train) - 1} times with "
                f"{'growing ' if growing else ''}gaps and never got an acknowledgment (the peer or the "
                f"path had vanished); it {tail}.")
    if not growing:
        b.notes.append("the retransmission gaps do not grow as an RTO backoff's would")
    return b.done("retransmission-timeout", sentence,
                  [Candidate("retransmission-timeout", why, _TELL["retransmission-timeout"])])


def _keepalive_verdict(f: _Facts, ctx: _Context, b: _Builder, probes: list[Packet]) -> Explanation:
    x, y = endpoint(*f.x), endpoint(*f.y)
    last_data = max((p for p in f.before if p.length), key=lambda p: p.time, default=None)
    b.add(last_data, "the last data")
    for i, p in enumerate(probes):
        b.add(p, f"keepalive probe {i + 1} (seq = snd_una - 1, length {p.length})")
    answers = [p for p in f.ys if p.time > probes[0].time]
    if answers:
        b.notes.append(f"{y} did answer {len(answers)} probe(s) here, but the answers never reached {x}")
    if "." in f.rst.flags:
        b.add(f.rst, f"{x} gives up: RST")
    else:
        b.add(f.answered, f"{y}'s later segment")
        b.add(f.rst, "RST without ACK: the connection was already gone on this side")
    gaps = [q.time - p.time for p, q in pairwise(probes)]
    idle = probes[0].time - (last_data.time if last_data is not None else probes[0].time)
    interval = f", {_secs(sum(gaps) / len(gaps))} apart" if gaps else ""
    why = f"{len(probes)} keepalive probe(s){interval} after {_secs(idle)} idle, none answered, then the RST"
    sentence = (f"{x}'s keepalive probes went unanswered ({len(probes)}{interval}), so its kernel declared "
                "the peer dead and reset the connection; its application gets ETIMEDOUT.")
    return b.done("keepalive-timeout", sentence,
                  [Candidate("keepalive-timeout", why, _TELL["keepalive-timeout"])])


def _abort(f: _Facts, ctx: _Context) -> Explanation:
    """`R.` from X on an established connection: tcp_send_active_reset."""
    b = _Builder(f, ctx)
    x, y = endpoint(*f.x), endpoint(*f.y)
    probes = _keepalive_probes(f)
    if probes:
        return _keepalive_verdict(f, ctx, b, probes)
    train = _retransmissions(f)
    if train and train[-1] is f.xs[-1]:
        return _retrans_verdict(f, ctx, b, train)
    y_data = [p for p in f.ys if p.length]
    b.add(y_data[-1] if y_data else None, f"the last data from {y}")
    x_acks = [p for p in f.xs if "." in p.flags and y_data and p.time > y_data[-1].time]
    b.add(x_acks[0] if x_acks else None, f"{x}'s kernel acknowledges it")
    if f.x_fin is not None:
        b.add(f.x_fin, f"{x} had sent FIN before")
    fin_note = "" if f.x_fin is not None else ", no FIN"
    b.add(f.rst, f"RST with ACK (seq = {x}'s next byte, ack = all it received){fin_note}: an abortive close")
    n_unread = f.y_data_acked
    unread = Candidate("unread-data-close",
                       f"{x} had received {n_unread} bytes from {y}"
                       + (f", {f.y_unanswered} of them after it last sent anything" if f.y_unanswered else "")
                       + "; closing with unread data sends RST instead of FIN", _TELL["unread-data-close"])
    linger = Candidate("linger-abort", "an abortive close (SO_LINGER {1, 0}) sends exactly this RST, "
                                       "whatever was read", _TELL["linger-abort"])
    if f.x_role == "server" and f.x_data == 0 and f.handshake:
        listener = Candidate("listener-close-backlog",
                             f"{x} never sent a byte: the connection may never have been accepted",
                             _TELL["listener-close-backlog"])
        batch = ctx.batch_size(f.x, f.rst.time)
        synack = next((p for p in f.xs if "S" in p.flags), None)
        b.add(synack, f"{x}'s kernel completes the handshake")
        if batch > 1:
            why = (f"{batch} connections queued on {x} were reset within {_secs(BATCH_WINDOW)} of each "
                   "other, and it never sent a byte on them")
            sentence = (f"The application at {x} closed its listening socket (or exited) while this "
                        "connection still waited in the accept queue; the kernel resets every queued "
                        "connection, and the client sees ECONNRESET.")
            b.notes.append("a process that exits with accepted but unread connections resets them at "
                           "the same moment too (unread-data-close)")
            return b.done("listener-close-backlog", sentence,
                          [Candidate("listener-close-backlog", why, _TELL["listener-close-backlog"])])
        cands = [unread, listener, linger] if n_unread else [listener, linger]
        what = (f"it received {n_unread} bytes and never answered" if n_unread else "no data ever flowed")
        sentence = (f"{x} reset the connection without ever sending a byte ({what}): its listener closed "
                    "with the connection still queued, or the application accepted it and closed it "
                    + ("with the data unread" if n_unread else "abortively")
                    + "; the wire looks the same either way.")
        return b.done(AMBIGUOUS, sentence, cands)
    if n_unread == 0 and f.handshake:
        why = f"nothing ever came from {y}, so nothing can have been left unread"
        sentence = (f"{x} aborted the connection instead of closing it (close() with SO_LINGER {{1, 0}} or "
                    "an equivalent abort): a RST where a FIN would be, with nothing left to read; the peer "
                    "sees ECONNRESET.")
        return b.done("linger-abort", sentence, [Candidate("linger-abort", why, _TELL["linger-abort"])])
    if not f.handshake:
        b.notes.append("the capture starts mid-connection: earlier data is not in it")
    cands = [unread, linger] if f.y_unanswered or not f.handshake else [linger, unread]
    sentence = (f"{x} reset the connection instead of closing it with FIN after receiving {n_unread} bytes: "
                "it closed with data still unread, or it aborted on purpose (SO_LINGER {1, 0}); both send "
                "this same RST, and the peer sees ECONNRESET.")
    return b.done(AMBIGUOUS, sentence, cands)


def _unknown(f: _Facts, ctx: _Context) -> Explanation:
    b = _Builder(f, ctx)
    x = endpoint(*f.x)
    for p in f.before[-3:]:
        b.add(p, "before the reset")
    b.add(f.rst, f"the first RST, from {x}")
    if f.shape == "lonely":
        sentence = (f"The capture holds only the RST from {x} for this connection (it began before the "
                    "capture did, or its packets were lost), so there is nothing to tell its cause by.")
    else:
        sentence = (f"{x} sent a RST ({f.rst.flags}) that fits none of the known causes: "
                    "see the packets before it.")
    return b.done(UNKNOWN, sentence, [])


def _silent_drop(c: _Conn, ctx: _Context, end_time: float) -> Explanation | None:
    """A connection of SYNs only: never answered."""
    c.prepare()
    syns = c.pk
    if len(syns) < 2 and end_time - syns[-1].time < SYN_GRACE:
        return None         # a SYN at the very end of the capture: its answer may just be missing
    b = _Builder(None, ctx, c)
    first, last = syns[0], syns[-1]
    dst = endpoint(first.dst, first.dport)
    b.add(first, "the SYN")
    for i, p in enumerate(syns[1:], 1):
        gap = p.time - syns[i - 1].time
        b.add(p, f"retransmitted {_secs(gap)} later")
    span = last.time - first.time
    where = "something on the path or the host itself dropped it"
    if first.direction == "in":
        if any(p.index in c.forwarded for p in syns):
            where = "this capture host forwarded it; nothing came back through it"
        else:
            where = ("the SYN reached this capture host and was not answered: its firewall dropped "
                     "it (or, on a router, it was not forwarded)")
    b.notes.append("ICMP is not examined: a host or router answering with ICMP unreachable looks "
                   "the same here")
    sentence = (f"The SYN to {dst} was sent {len(syns)} time{'s' if len(syns) > 1 else ''}"
                f"{f' over {_secs(span)}' if len(syns) > 1 else ''} and never answered, neither by "
                f"SYN/ACK nor by RST: {where}; connect() hangs until the client's own timeout.")
    why = f"{len(syns)} SYN(s), no answer at all"
    return b.done(SILENT_DROP, sentence, [Candidate(SILENT_DROP, why, "a capture on the destination: "
                                                    "if the SYN arrives there, its firewall drops it")])
