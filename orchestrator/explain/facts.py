"""Connections and the facts about each reset, computed once for every cause to read.

A connection is what `connections.ConnectionTracker` says it is (the one place
that knows "a new SYN starts a new connection"). For a connection with a RST,
`Facts` holds what the packets before the first RST say about the resetting
side X and its peer Y, and which wire family the RST belongs to:

* `refused`: X answers Y's SYN with `R.` (ack = ISN+1) and no SYN/ACK.
* `late-synack`: X sent the SYN, Y's SYN/ACK came, X answers with a bare `R`.
* `no-socket`: a bare `R` (no ACK) on an established connection.
* `abort`: `R.` on an established connection (tcp_send_active_reset).
* `lonely`: the RST is the only packet of the connection in the capture.
* `other`: none of these.
* `out-of-window`: no RST at all, but a data segment far above any window its
  receiver offered, answered with a duplicate ACK (then `rst` is that segment,
  X its sender and `answered` the ACK).
* `unanswered`: no RST at all, only SYNs (then `rst` is the last SYN and X the
  side that never answered).
* `half-open`: no RST at all, only the client's SYNs and the server's SYN/ACKs
  (then `rst` is the last SYN/ACK and X the client, which never completed).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise

from ..capture import (
    FLAG_KIND,
    KIND_ACK,
    KIND_BARE_ACK,
    KIND_FIN,
    KIND_FIRST_SYN,
    KIND_RST,
    KIND_STEP_SHIFT,
    KIND_SYN,
    KIND_SYNACK,
    Packet,
)
from ..connections import SEQ_MOD, ConnectionTracker, seq_after
from .result import endpoint
from .zeek import ZeekRow

__all__ = ["COPY", "COPY_WINDOW", "FORWARDED", "KEPT", "Addr", "Connection", "CopyFolder", "Elided", "Facts", "Sent",
           "connections", "facts_of", "gaps", "seq_end", "stray_at", "stray_facts", "window_offset"]

COPY_WINDOW = 0.005       # s: the same segment seen twice this close together is one packet copied
LONG_HEAD = 500           # a long connection keeps its first packets ...
LONG_TAIL = 1000          # ... and its last ones: the middle is let go (Connection.elide) ...
LONG_AFTER_RST = 500      # ... and the ones right after each RST (where a carry-on shows: carry_on.py)
LONG_FOLD = 4096          # a long connection's copy folder is pruned of old segments beyond this many
MAX_WINDOW_SCALE = 14     # RFC 7323: a window field is worth at most 2^14 times itself

Addr = tuple[str, int]

def seq_end(p: Packet) -> int:
    """The sequence number just past a segment (SYN and FIN count one)."""
    return (p.seq + p.length + p.is_syn + p.is_fin) & SEQ_MOD


class Connection:
    """One connection: its packets (forwarding copies folded) and what they say."""

    __slots__ = ("carried_on", "client", "client_isn", "cut_at", "earlier", "elided", "fed", "first_rst", "folder",
                 "forwarded", "fresh", "held", "last_rst", "later", "latest_rst", "no_copies", "number", "pinned", "pins",
                 "pk", "raw", "resets", "rst_pos", "scanned", "server", "server_isn", "whole", "zeek")

    def __init__(self, raw: list[Packet], number: int = 0) -> None:
        self.raw = raw
        self.number = number                 # the connection's number in the capture (0-based)
        self.pk: list[Packet] = []
        self.forwarded: set[int] = set()     # indexes of kept packets seen in and then out
        self.rst_pos = -1
        self.resets = 0                      # RSTs among pk (once prepared)
        self.client: Addr | None = None
        self.server: Addr | None = None
        self.client_isn: int | None = None
        self.server_isn: int | None = None
        self.first_rst: Packet | None = None
        self.no_copies = False               # set when the survey folded no copy in a forward-running file
        self.carried_on: tuple[Packet, Packet] | None = None   # a part it went on past: the ACK that shows it,
        #                                                        the next part's first RST (carry_on.py)
        self.earlier: Packet | None = None   # a later part: the first RST of the part before it
        self.whole: list[Packet] | None = None   # a part: the whole connection's packets (one Zeek conn.log row)
        # a long connection (`elide`): what its let-go middle before its first RST left, and its middles after a
        # RST; its conn.log row fed so far, how many of raw that row has been fed, the folder its packets pass at
        # arrival when copies may come; in raw, the RST the packets after which are kept (`_follow`), the latest
        # RST, whether new sequence space came since, and how far raw has been followed
        self.elided: Elided | None = None
        self.later: list[Elided] = []
        self.last_rst = -1
        self.latest_rst = -1
        self.fresh = False
        self.scanned = 0
        self.zeek: ZeekRow | None = None
        self.fed = 0
        self.folder: CopyFolder | None = None
        self.held = False                    # never cut back (elide): a stray whose segment is found
        # a connection a twin end opened (conntrack-invalid-unnat reads its numbers): the times of that end's bare
        # RSTs on connections never opened (survey.twin_times), those not reached yet, and the spans kept before
        # the ones reached: the LONG_TAIL packets before each, where the segment a stray carries the numbers of is
        self.pins: list[float] = []
        self.pinned: list[tuple[float, float]] = []
        self.cut_at = LONG_HEAD + 2 * LONG_TAIL   # the length of raw at which `elide` looks again

    def prepare(self) -> None:
        """Fold copies, find the roles and the first RST (only for connections of interest)."""
        if self.pk:
            return
        if self.no_copies:      # the survey's folder, fed the same packets, kept them all (or this one's, at arrival)
            self.pk = list(self.raw)
        else:
            folder = CopyFolder()
            self.pk = [p for p in self.raw if folder.keep(p) == KEPT]
            self.forwarded = folder.forwarded
        if self.zeek is not None:      # a long connection: its conn.log row gets the rest
            self.zeek.feed(self.pk[self.fed:])
            self.fed = len(self.pk)
        self._roles()

    def arrive(self, p: Packet) -> None:
        """Take the connection's next packet (in capture order); a long one's copies are folded here."""
        folder = self.folder
        if folder is not None:
            if folder.keep(p) != KEPT:
                return
            if len(folder.seen) > LONG_FOLD:
                folder.prune(p.time - COPY_WINDOW)
        self.raw.append(p)

    def gone(self) -> list[Elided]:
        """Every middle let go, in order."""
        return ([self.elided] if self.elided is not None else []) + self.later

    def elide(self, stray: bool = False) -> None:
        """Let go of the packets of a long connection between its first LONG_HEAD (and the LONG_AFTER_RST after its
        latest RST that is no repeat: `_follow`) and its last LONG_TAIL, so that its memory stays bounded however
        long it runs, a flood of RSTs too: its SYNs and FINs stay, and the others are fed to its conn.log row and
        counted and summed per sender (its RSTs by sender and TTL) first (`elided`
        before its first RST, `later` after one: what a reset incident's facts read, `carry_on.parts`). From
        the first call on, its copies are folded at arrival (`arrive`). A `stray` (a connection without a RST
        kept for a segment that may be out of window) is not cut once that segment is found (`stray_at`): it is
        `held` whole."""
        raw = self.raw
        self.cut_at = len(raw) + LONG_TAIL      # the next look: after as many packets again as a tail holds
        if self.zeek is None:
            if not self.no_copies:
                folder = self.folder = CopyFolder()
                raw = [p for p in raw if folder.keep(p) == KEPT]
                self.forwarded = folder.forwarded
                self.no_copies = True
            self.zeek = ZeekRow(raw[0])
        self._follow(raw)
        self._pin(raw)
        rst = self.last_rst
        head, cut = LONG_HEAD if rst < 0 else max(LONG_HEAD, rst + LONG_AFTER_RST), len(raw) - LONG_TAIL
        if cut <= head:
            self.raw = raw
            return
        if stray and stray_at(self) is not None:
            self.held = True       # its out-of-window segment is found: it is held whole from here on
            self.raw = raw
            return
        if rst < 0:
            gone = self.elided = self.elided or Elided()
        else:                      # the middle since the latest RST: one of its own
            after = raw[rst].index
            if not self.later or self.later[-1].after != after:
                self.later.append(Elided(after))
            gone = self.later[-1]
        self.zeek.feed(raw[self.fed:cut])
        kept = gone.take(raw, head, cut, self.forwarded, self.pinned)
        self.raw = raw[:head] + kept + raw[cut:]
        self.fed = head + len(kept)
        self.cut_at = len(self.raw) + LONG_TAIL
        if self.latest_rst >= cut:
            self.latest_rst -= cut - self.fed
        elif self.latest_rst >= head:        # let go: new sequence space from here on is kept after the middle
            self.latest_rst = self.fed - 1
        self.scanned = len(self.raw)

    def _pin(self, raw: list[Packet]) -> None:
        """Keep the LONG_TAIL packets before each of `pins` that raw has reached (they are its tail until then)."""
        while self.pins and raw[-1].time >= self.pins[0]:
            t = self.pins.pop(0)
            at = next((i for i in range(len(raw) - 1, -1, -1) if raw[i].time < t), -1) + 1
            self.pinned.append((raw[max(at - LONG_TAIL, 0)].time, t))

    def _follow(self, raw: list[Packet]) -> None:
        """Move `last_rst` over the packets not followed yet: to each RST with new sequence space (data, a SYN or a
        FIN) before it since the RST before it, or after it. Those are where a connection may carry on past its
        RST (carry_on.py): a RST that repeats the one before with nothing new between, and what follows it until
        something new, cannot, so a flood of RSTs on one connection is let go like any long middle."""
        anchor, latest, fresh = self.last_rst, self.latest_rst, self.fresh
        kinds = FLAG_KIND
        for i in range(self.scanned, len(raw)):
            p = raw[i]
            kind = kinds[p.flags]
            if kind & KIND_RST:
                if fresh or anchor < 0:
                    anchor = i
                latest, fresh = i, False
            elif p.length or kind & (KIND_SYN | KIND_FIN):
                fresh = True
                if latest > anchor:
                    anchor = latest
        self.last_rst, self.latest_rst, self.fresh, self.scanned = anchor, latest, fresh, len(raw)

    def part(self, start: int, end: int, earlier: Packet | None = None) -> Connection:
        """The prepared packets pk[start:end] as a connection of their own (one reset incident,
        `carry_on.parts`): the roles and ISNs they do not show are this connection's."""
        part = Connection(self.pk[start:end], self.number)
        part.pk, part.forwarded, part.earlier, part.whole = part.raw, self.forwarded, earlier, self.pk
        part.zeek = self.zeek
        part._roles()
        lo, hi = part.pk[0].index, part.pk[-1].index
        for gone in self.gone():           # the middles let go within it: before its first RST, and after
            if lo <= gone.first <= hi:
                if part.first_rst is not None and gone.first < part.first_rst.index:
                    part.elided = gone
                else:
                    part.later.append(gone)
        part.resets += sum(gone.resets for gone in part.gone())
        if part.client is None:
            part.client, part.server = self.client, self.server
        if part.client_isn is None:
            part.client_isn = self.client_isn
        if part.server_isn is None:
            part.server_isn = self.server_isn
        return part

    def _roles(self) -> None:
        """The client and server, their ISNs, the first RST and how many there are, from pk."""
        kinds = FLAG_KIND
        for i, p in enumerate(self.pk):
            kind = kinds[p.flags]
            if not kind & (KIND_SYN | KIND_RST):
                continue
            if kind & KIND_FIRST_SYN and self.client is None:
                self.client, self.server = (p.src, p.sport), (p.dst, p.dport)
                self.client_isn = p.seq
            elif kind & KIND_SYNACK and self.server_isn is None:
                if self.client is None:
                    self.client, self.server = (p.dst, p.dport), (p.src, p.sport)
                self.server_isn = p.seq
            if kind & KIND_RST:
                self.resets += 1
                if self.first_rst is None:
                    self.first_rst = p
                    self.rst_pos = i
        if self.whole is None:            # a part adds the middles that fall within it (`part`)
            self.resets += sum(gone.resets for gone in self.gone())

    @property
    def has_reset(self) -> bool:
        return any(p.is_rst for p in self.raw)

    @property
    def both_ways(self) -> bool:
        """Packets of both directions are in the capture."""
        first = self.raw[0]
        return any(p.src != first.src or p.sport != first.sport for p in self.raw)

    @property
    def only_syns(self) -> bool:
        return all(p.is_first_syn for p in self.raw)


class Sent:
    """What one sender's let-go packets of a long connection's middle add up to."""

    __slots__ = ("acked", "data", "first_ack", "high", "since_peer", "window")

    def __init__(self) -> None:
        self.data = 0                       # payload bytes
        self.window = 0                     # the largest window field it sent (unscaled)
        self.since_peer = 0                 # of those, bytes sent after the peer's latest data in the middle
        self.high: int | None = None        # its highest sequence end
        self.acked = False                  # it sent a segment with ACK but no SYN
        self.first_ack: int | None = None   # the ack of the first of those


class Elided:
    """A middle of a long connection let go (`Connection.elide`), before its first RST or since a later one: how
    many packets, where they were (after which kept packet, how many), per sender what they sent, and the RSTs
    among them (a flood's repeats): how many, per sender how many with each TTL, and their looks (sender, ACK
    flag and sequence number) up to two."""

    __slots__ = ("after", "count", "first", "gaps", "last_time", "resets", "rst_looks", "rst_ttls", "sent", "talker")

    def __init__(self, after: int = -1) -> None:
        self.after = after                  # the index of the RST it follows (-1: before the first)
        self.count = 0
        self.first = -1                     # the index of the first packet let go
        self.last_time = float("-inf")      # the time of the last
        # [index of the kept packet before the gap, packets let go there, the first one's time, the last one's]
        self.gaps: list[list[float]] = []
        self.sent: dict[Addr, Sent] = {}
        self.talker: Addr | None = None     # the sender of the latest data in the middle
        self.resets = 0
        self.rst_ttls: dict[Addr, dict[int | None, int]] = {}
        self.rst_looks: set[tuple[Addr, bool, int]] = set()

    def take(self, raw: list[Packet], head: int, cut: int, forwarded: set[int],
             spans: Sequence[tuple[float, float]] = ()) -> list[Packet]:
        """Let go of raw[head:cut] but its SYNs and FINs and the packets within `spans` (from, to: times)
        (returned, to keep), counting and summing the rest (its RSTs counted only)."""
        kept: list[Packet] = []
        kinds = FLAG_KIND
        sent = self.sent
        gap = self.gaps[-1] if self.gaps else None
        anchor = raw[head - 1].index if head else -1
        talker = self.talker
        last: float | None = None           # the time of the latest packet let go
        for p in raw[head:cut]:
            kind = kinds[p.flags]
            key = (p.src, p.sport)
            n = 0 if kind & KIND_RST else p.length     # a RST's payload is no sequence space
            if n and key != talker:
                talker = key
                for other, peer in sent.items():
                    if other != key:
                        peer.since_peer = 0           # the peer's data came after it
            if kind & (KIND_SYN | KIND_FIN) or (spans and any(lo <= p.time < hi for lo, hi in spans)):
                kept.append(p)
                anchor = p.index
                continue
            if gap is None or gap[0] != anchor:
                if gap is not None and last is not None:
                    gap[3] = last
                gap = [anchor, 0, p.time, p.time]
                self.gaps.append(gap)
                if self.first < 0:
                    self.first = p.index
            gap[1] += 1
            last = p.time
            if kind & KIND_RST:        # a flood's repeat (`Connection._follow`): counted, its numbers not summed
                self.resets += 1
                ttls = self.rst_ttls.setdefault(key, {})
                ttls[p.ttl] = ttls.get(p.ttl, 0) + 1
                if len(self.rst_looks) < 2:
                    self.rst_looks.add((key, bool(kind & KIND_ACK), p.seq))
                continue
            s = sent.get(key)
            if s is None:
                s = sent[key] = Sent()
            if n:
                s.data += n
                s.since_peer += n
                end = (p.seq + n) & SEQ_MOD
                h = s.high
                if h is None or 0 < (end - h) & SEQ_MOD < 0x80000000:          # seq_after(end, h)
                    s.high = end
            if kind & KIND_ACK and not s.acked:
                s.acked, s.first_ack = True, p.ack
            if p.window > s.window:
                s.window = p.window
        if gap is not None and last is not None:
            gap[3] = self.last_time = last
        if forwarded:
            stay = {p.index for p in kept}
            forwarded.difference_update(p.index for p in raw[head:cut] if p.index not in stay)
        self.count += cut - head - len(kept)
        self.talker = talker
        return kept


def connections(packets: Iterable[Packet]) -> list[Connection]:
    """Group packets into connections, in order of each connection's first packet."""
    groups: list[list[Packet]] = []
    segment = ConnectionTracker().segment
    for p in packets:
        conn, _, _ = segment(p.src, p.sport, p.dst, p.dport, p.bits, p.seq, p.ack)
        if conn == len(groups):
            groups.append([p])
        else:
            groups[conn].append(p)
    return [Connection(g, n) for n, g in enumerate(groups)]


KEPT, COPY, FORWARDED = 0, 1, 2      # what CopyFolder.keep says of a packet


class CopyFolder:
    """Drops the second sighting of a segment a capture saw twice (`-i any` on a router sees
    a forwarded segment coming in and going out; a bridge floods a copy back; a SPAN port
    mirrors a frame twice): the same TCP header within COPY_WINDOW with a different
    direction or interface, or with the same IP ID and TTL. Feed it packets in order;
    `forwarded` collects the indexes of kept packets that were forwarded
    (seen in, then out)."""

    __slots__ = ("forwarded", "last", "seen")

    def __init__(self) -> None:
        self.seen: dict[tuple[int, str, int, str, int, int, int, int], Packet] = {}
        self.forwarded: set[int] = set()
        self.last = float("-inf")        # time of the last packet fed

    def keep(self, p: Packet, conn: int = 0) -> int:
        """KEPT, or COPY (a copy to drop), or FORWARDED (the outgoing copy of a kept incoming one).
        `conn` keeps apart the connections of one folder fed several."""
        self.last = p.time
        sig = (conn, p.src, p.sport, p.flags, p.seq, p.ack, p.length, p.window)
        q = self.seen.get(sig)
        if q is not None and 0 <= p.time - q.time <= COPY_WINDOW:
            if q.direction != p.direction or q.ifindex != p.ifindex:
                if q.direction == "in" and p.direction == "out":
                    self.forwarded.add(q.index)
                    return FORWARDED
                return COPY
            if p.ip_id and p.ip_id == q.ip_id and p.ttl == q.ttl:
                return COPY    # the same frame twice (a SPAN port mirroring both directions)
        self.seen[sig] = p
        return KEPT

    def prune(self, before: float) -> None:
        """Forget segments older than `before`: no later copy can fold onto them (in a
        capture whose time runs forward)."""
        self.seen = {sig: q for sig, q in self.seen.items() if q.time >= before}


@dataclass(slots=True)
class Facts:
    """What the packets before the first RST say about the resetting side X and its peer Y."""

    conn: Connection
    rst: Packet                        # the first RST (for `unanswered`: the last SYN)
    x: Addr                            # who sent it (for `unanswered`: who never answered)
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
    origin: str | None                 # "here": the capture host sent the RST; "through"; "in"
    family: str = ""                   # see the module docstring
    answered: Packet | None = None     # the segment of Y a no-ACK RST answers
    retransmissions: list[Packet] = field(default_factory=list)   # X's unacknowledged train
    probes: list[Packet] = field(default_factory=list)            # X's trailing keepalive probes
    forged: list[str] = field(default_factory=list)      # evidence a middlebox sent the RST
    by_endpoint: str = ""              # evidence the endpoint itself sent it, or ""

    @property
    def x_text(self) -> str:
        """X as `addr:port`."""
        return endpoint(*self.x)

    @property
    def y_text(self) -> str:
        """Y as `addr:port`."""
        return endpoint(*self.y)


def facts_of(conn: Connection) -> Facts:
    """The facts of a connection with a RST (or of SYNs only: the `unanswered` family)."""
    conn.prepare()
    rst = conn.first_rst
    if rst is None and conn.client is not None and conn.server_isn is not None:
        return _half_open(conn)
    if rst is None:
        last = conn.pk[-1]
        return Facts(conn, last, (last.dst, last.dport), (last.src, last.sport), conn.pk[:-1], [],
                     conn.pk, "server", False, 0, 0, 0, None, None, family="unanswered")
    x: Addr = (rst.src, rst.sport)
    y: Addr = (rst.dst, rst.dport)
    before = conn.pk[:conn.rst_pos]
    seen = _Before(before, x)
    xs, ys = seen.xs, seen.ys
    x_role = None if conn.client is None else ("client" if x == conn.client else "server")
    gone = conn.elided               # a long connection's middle, let go: what each end sent there
    x_gone, y_gone = (gone.sent.get(x), gone.sent.get(y)) if gone is not None else (None, None)
    x_acked = seen.x_acked or bool(x_gone and x_gone.acked)
    y_acked = seen.y_acked or bool(y_gone and y_gone.acked)
    handshake = False
    if conn.client_isn is not None and conn.server_isn is not None:
        # the client's ACK of the SYN/ACK, or a RST.ACK that acknowledges the peer's SYN from
        # past its own (only a synchronized socket sends one; the ACK may be lost from the capture)
        x_isn, y_isn = ((conn.client_isn, conn.server_isn) if x == conn.client
                        else (conn.server_isn, conn.client_isn))
        client_acked = x_acked if x == conn.client else y_acked and y == conn.client
        handshake = (client_acked
                     or (rst.has_ack and not seq_after(x_isn + 1, rst.seq)
                         and not seq_after(y_isn + 1, rst.ack) and rst.seq != x_isn))
    elif conn.client_isn is not None and not ys and x == conn.client:
        # one direction recorded: the client's ACK after its SYN shows the SYN/ACK came
        handshake = x_acked
    first_ack = seen.first_ack
    if gone is not None and x_gone is not None and x_gone.first_ack is not None and (
            seen.first_ack_at is None or seen.first_ack_at > gone.first):
        first_ack = x_gone.first_ack
    y_data_acked = y_unanswered = 0
    if handshake and not ys and first_ack is not None and rst.has_ack:
        # Y's packets are not in the capture: X's acknowledgments say what it received
        y_data_acked = (rst.ack - first_ack) & SEQ_MOD
    last_x_data = seen.last_x_data
    for p in ys:
        if p.length and (not rst.has_ack or not seq_after(seq_end(p), rst.ack)):
            y_data_acked += p.length
            if last_x_data is None or p.time > last_x_data:
                y_unanswered += p.length
    if gone is not None and y_gone is not None and ys and y_gone.high is not None and (
            not rst.has_ack or not seq_after(y_gone.high, rst.ack)):
        y_data_acked += y_gone.data                   # all of it acknowledged, as its highest end is
        if last_x_data is None or last_x_data < gone.last_time:
            y_unanswered += y_gone.since_peer         # X's latest data came before the middle's end
    # Copies are folded onto their first sighting, so a kept outgoing packet is one the
    # capture host sent itself, and a forwarded one is kept as its incoming copy.
    if rst.index in conn.forwarded:
        origin: str | None = "through"
    elif rst.direction == "out":
        origin = "here"
    elif rst.direction in ("in", "other"):
        origin = "in"
    else:
        origin = None
    f = Facts(conn, rst, x, y, before, xs, ys, x_role, handshake, seen.x_data + (x_gone.data if x_gone else 0),
              y_data_acked, y_unanswered, seen.x_fin, origin)
    _family(f, seen)
    if f.family in ("no-socket", "abort"):
        f.retransmissions = _retransmissions(f)
        f.probes = _keepalive_probes(f)
    return f


def _half_open(conn: Connection) -> Facts:
    """SYNs and SYN/ACKs only: X is the client that never completed the handshake, `rst` the last SYN/ACK."""
    x, y = conn.client, conn.server
    assert x is not None and y is not None
    synacks = [p for p in conn.pk if p.is_synack]
    xs = [p for p in conn.pk if (p.src, p.sport) == x]
    return Facts(conn, synacks[-1], x, y, conn.pk[:conn.pk.index(synacks[-1])], xs, synacks, "client", False,
                 0, 0, 0, None, None, family="half-open")


class _Before:
    """One pass over the packets before the RST: each side's, and what the family and the facts ask of them."""

    __slots__ = ("first_ack", "first_ack_at", "last_x_data", "x_acked", "x_data", "x_fin", "x_first_syn", "x_syn",
                 "xs", "y_acked", "y_first_syns", "y_synacks", "ys")

    def __init__(self, before: list[Packet], x: Addr) -> None:
        xs: list[Packet] = []
        ys: list[Packet] = []
        y_first_syns: list[Packet] = []
        y_synacks: list[Packet] = []
        x_data = 0
        last_x_data: float | None = None           # the time of X's latest data segment
        x_fin: Packet | None = None                # X's first FIN
        first_ack: int | None = None               # the ack of X's first segment with ACK but no SYN
        first_ack_at: int | None = None            # and that segment's index
        x_syn = x_first_syn = x_acked = y_acked = False    # acked: sent a segment with ACK but no SYN
        kinds = FLAG_KIND
        x_addr, x_port = x
        for p in before:
            kind = kinds[p.flags]
            if p.sport == x_port and p.src == x_addr:
                xs.append(p)
                if p.length:
                    x_data += p.length
                    if last_x_data is None or p.time > last_x_data:
                        last_x_data = p.time
                if kind & KIND_SYN:
                    x_syn = True
                    x_first_syn = x_first_syn or bool(kind & KIND_FIRST_SYN)
                elif kind & KIND_ACK:
                    x_acked = True
                    if first_ack is None:
                        first_ack, first_ack_at = p.ack, p.index
                if kind & KIND_FIN and x_fin is None:
                    x_fin = p
            else:
                ys.append(p)
                if kind & KIND_FIRST_SYN:
                    y_first_syns.append(p)
                elif kind & KIND_SYNACK:
                    y_synacks.append(p)
                elif kind & KIND_ACK:
                    y_acked = True
        self.xs, self.ys, self.y_first_syns, self.y_synacks = xs, ys, y_first_syns, y_synacks
        self.x_data, self.last_x_data, self.x_fin, self.first_ack = x_data, last_x_data, x_fin, first_ack
        self.first_ack_at = first_ack_at
        self.x_syn, self.x_first_syn, self.x_acked, self.y_acked = x_syn, x_first_syn, x_acked, y_acked


def _family(f: Facts, seen: _Before) -> None:
    """Which family of RST this is, from the RST and the packets before it."""
    rst = f.rst
    y_syns = seen.y_first_syns
    if y_syns and not seen.x_syn and rst.has_ack and any(rst.ack == (p.seq + 1) & SEQ_MOD for p in y_syns):
        f.family = "refused"
        return
    y_synacks = seen.y_synacks
    if seen.x_first_syn and y_synacks and not rst.has_ack and not seen.x_acked:
        f.family = "late-synack"
        f.answered = next((p for p in y_synacks if p.ack == rst.seq), y_synacks[-1])
        return
    if not f.before:
        f.family = "lonely"
        return
    if not rst.has_ack:
        f.answered = next((p for p in reversed(f.ys) if p.has_ack and p.ack == rst.seq), None)
        f.family = "no-socket"
        return
    if f.conn.client is not None and not f.handshake:
        f.family = "other"
        return
    f.family = "abort"


def _retransmissions(f: Facts) -> list[Packet]:
    """X's transmissions of its first unacknowledged segment, when it sent it twice or more
    and Y never acknowledged it (before the RST)."""
    kinds = FLAG_KIND
    segs = [p for p in f.xs if not kinds[p.flags] & KIND_SYN and (p.length or kinds[p.flags] & KIND_FIN)]
    if len(segs) < 2:
        return []                           # no segment was sent twice
    una: int | None = None                  # the highest acknowledgment from Y
    for p in f.ys:
        if kinds[p.flags] & KIND_ACK and (una is None or 0 < (p.ack - una) & SEQ_MOD < 0x80000000):
            una = p.ack
    if una is None:
        una = segs[-1].seq
    train = [p for p in segs if p.seq == una]
    if len(train) < 2:
        return []
    first = train[0].time
    if any(p.has_ack and seq_after(p.ack, una) for p in f.ys if p.time > first):
        return []
    return train


def _keepalive_probes(f: Facts) -> list[Packet]:
    """X's trailing keepalive probes: pure ACKs at snd_una - 1 (length 0 or 1), after the
    last data, with no data from Y after the first one and a non-zero peer window."""
    snd_nxt: int | None = None
    probes: list[Packet] = []
    kinds = FLAG_KIND
    for p in f.xs:
        kind = kinds[p.flags]
        length = p.length
        if snd_nxt is not None and kind & KIND_BARE_ACK and length <= 1 and p.seq == (snd_nxt - 1) & SEQ_MOD:
            probes.append(p)
        elif length or kind & (KIND_FIN | KIND_SYN):
            probes = []
        e = (p.seq + length + (kind >> KIND_STEP_SHIFT)) & SEQ_MOD          # seq_end(p)
        if snd_nxt is None or 0 < (e - snd_nxt) & SEQ_MOD < 0x80000000:
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


def gaps(packets: list[Packet]) -> list[float]:
    """The time between consecutive packets."""
    return [q.time - p.time for p, q in pairwise(packets)]


def window_offset(seg: Packet, sender: list[Packet], receiver: list[Packet], gone: Elided | None = None) -> int | None:
    """How far `seg` lies outside its sender's sequence space (negative: below it), when it is beyond
    any window the receiver can have offered (each window field scaled by the most RFC 7323 allows);
    None when it is not, or when the sender sent nothing before to compare with. `gone`: the middle of
    a long connection, let go, whose sequence ends and windows count too."""
    mine = theirs = None
    if gone is not None:
        mine, theirs = gone.sent.get((seg.src, seg.sport)), gone.sent.get((seg.dst, seg.dport))
    nxt: int | None = mine.high if mine is not None else None
    for p in sender:
        if p is seg or p.is_rst or p.time > seg.time:
            continue
        end = seq_end(p)
        if nxt is None or seq_after(end, nxt):
            nxt = end
    if nxt is None:
        return None
    windows = [p.window if p.is_syn else p.window << MAX_WINDOW_SCALE for p in receiver
               if not p.is_rst and p.time <= seg.time]
    if theirs is not None and theirs.window:
        windows.append(theirs.window << MAX_WINDOW_SCALE)
    bound = max(windows, default=0xFFFF << MAX_WINDOW_SCALE)
    offset = (seg.seq - nxt) & SEQ_MOD
    if bound < offset < (1 << 32) - bound:
        return offset if offset <= 0x80000000 else offset - (1 << 32)
    return None


def stray_facts(conn: Connection) -> Facts | None:
    """The `out-of-window` family, for a connection without a RST: its first data segment that lies
    above any window its receiver offered and that the receiver answered with a duplicate ACK."""
    found = stray_at(conn)
    if found is None:
        return None
    i, answer = found
    seg = conn.raw[i]
    sender = (seg.src, seg.sport)
    conn.prepare()
    pos = next((k for k, p in enumerate(conn.pk) if p is seg), len(conn.pk))
    kept = conn.pk[:pos]
    y = (seg.dst, seg.dport)
    role = None if conn.client is None else ("client" if sender == conn.client else "server")
    return Facts(conn, seg, sender, y, kept, [p for p in kept if (p.src, p.sport) == sender],
                 [p for p in kept if (p.src, p.sport) != sender], role, conn.server_isn is not None, 0, 0, 0,
                 None, None, family="out-of-window", answered=answer)


def stray_at(conn: Connection) -> tuple[int, Packet] | None:
    """Where in `conn.raw` that segment is, and the duplicate ACK that answered it; None if it has none. A long
    connection's let-go middle counts in each side's highest sequence end from its first gap on."""
    raw = conn.raw
    first = raw[0]
    high: list[int | None] = [None, None]       # each direction's highest sequence end so far
    kinds = FLAG_KIND
    gone = conn.elided
    anchor = int(gone.gaps[0][0]) if gone is not None and gone.gaps else None
    for i, p in enumerate(raw):
        if p.index == anchor and gone is not None:      # the middle let go came next
            for key, sent in gone.sent.items():
                side = 0 if key == (first.src, first.sport) else 1
                h = high[side]
                if sent.high is not None and (h is None or seq_after(sent.high, h)):
                    high[side] = sent.high
        n, step = p.length, kinds[p.flags] >> KIND_STEP_SHIFT      # step: the sequence numbers its SYN and FIN take
        if not (n or step):
            continue                             # pure ACKs: most of a capture, nothing to track
        side = 0 if p.src == first.src and p.sport == first.sport else 1
        h = high[side]
        if n and h is not None and 0xFFFF < (p.seq - h) & SEQ_MOD <= 0x80000000:
            answer = _stray_answer(conn, i, (p.src, p.sport))
            if answer is not None:
                return i, answer
        end = (p.seq + n + step) & SEQ_MOD
        if h is None or 0 < (end - h) & SEQ_MOD < 0x80000000:
            high[side] = end
    return None


def _stray_answer(conn: Connection, i: int, sender: Addr) -> Packet | None:
    """The duplicate ACK that answered raw[i], when that segment is out of window; else None."""
    raw = conn.raw
    seg = raw[i]
    before = raw[:i]
    xs = [p for p in before if (p.src, p.sport) == sender]
    ys = [p for p in before if (p.src, p.sport) != sender]
    jump = window_offset(seg, xs, ys, conn.elided)
    acks = [p.ack for p in ys if p.has_ack]
    if jump is None or jump < 0 or not acks:
        return None
    answer = next((p for p in raw[i + 1:] if (p.src, p.sport) != sender), None)
    if answer is None or not answer.has_ack or answer.is_rst or answer.ack != acks[-1]:
        return None                    # not answered, or not with a duplicate ACK
    return answer
