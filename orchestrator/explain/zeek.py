"""Zeek's `conn_state` and `history` for a connection, so explain's output joins Zeek's conn.log.

Follows base/protocols/conn/main.zeek (the conn_state function and the
history letters) and the TCP analyzer's endpoint states and update_history:

* a packet with two of SYN, FIN, RST is `q` (`i` for FIN+RST); otherwise a
  SYN is `s` (`h` with ACK), a FIN `f`, a RST `r`, each added again only when
  its sequence number differs from the last one of its kind (a FIN's is taken
  at the end of its data); a packet with none of them is `d` when it carries
  data, else `a` when it carries an ACK; `d` and `a` are recorded once;
* `w` is a zero window (not on a RST, nor after the sender's RST or the
  peer's FIN: update_window); `t` is payload at or below the sender's
  sequence end so far, unless the sender has reset (update_last_seq); each is
  recorded when first seen, again at 10, again at 100...;
* upper case for the originator; `^` when Zeek flipped the connection (`zeek_ends`).

The originator is what the connection's first packet says (`zeek_ends`,
TCPAnalyzer::WantConnection in src/packet_analysis/protocol/tcp/TCP.cc): a
pure SYN's sender; for a partial connection (first packet not a SYN, or a
SYN/ACK) its sender too, unless Zeek flips it by the ports: when the source
port is a likely server port and the destination port is not, or when both
are and the first packet is not a SYN/ACK and the source port is the lower.
A flipped connection's history starts with `^`. Later, a SYN/ACK originator
whose peer then sends a SYN is flipped there (UpdateInactiveState's SYN/SYN-ACK
reversal: `^` after that SYN's letter).

Endpoint states: INACTIVE, SYN_SENT, SYN_ACK_SENT, PARTIAL (began without a
SYN), ESTABLISHED, CLOSED (sent FIN), RESET (sent RST). An endpoint's size,
which decides REJ when both ends reset, is sequence space as
TCP_Endpoint::Size() takes it: the highest of its sequence end and the
acknowledgement its peer sent, past its start, less the SYN and a FIN. Data the
capture missed but the peer acknowledged counts; a segment far outside the
sequence space does not.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..capture import FLAG_KIND, KIND_ACK, KIND_FIN, KIND_RST, KIND_SYN, Packet
from ..connections import SEQ_MOD

__all__ = ["LIKELY_SERVER_PORTS", "ZeekRow", "conn_state", "zeek_conn", "zeek_ends"]

Addr = tuple[str, int]

# Zeek's `likely_server_ports` for TCP, as its default scripts fill it: each base/protocols/*/main.zeek
# `redef likely_server_ports += { ports }` with the ports it registers its analyzer for. This is the
# subset read from those scripts (zeek/zeek): dce-rpc 135; dnp3 20000; dns 53; finger 79; ftp 21, 2811;
# http 80, 81, 631, 1080, 3128, 8000, 8080, 8888; imap 143; irc 6666-6669; krb 88; ldap 389, 3268;
# modbus 502; pop3 110; rdp 3389; smb 139, 445; smtp 25, 587; socks 1080; ssh 22; ssl 443, 563, 585,
# 614, 636, 989, 990, 992, 993, 995, 5223; xmpp 5222, 5269. Analyzers not read (mysql declares 1434 and
# 3306 without adding them; spicy-based ones, site policy) are left out.
LIKELY_SERVER_PORTS = frozenset({
    21, 22, 25, 53, 79, 80, 81, 88, 110, 135, 139, 143, 389, 443, 445, 502, 563, 585, 587, 614, 631, 636,
    989, 990, 992, 993, 995, 1080, 2811, 3128, 3268, 3389, 5222, 5223, 5269, 6666, 6667, 6668, 6669,
    8000, 8080, 8888, 20000})

_TOO_LARGE_SEQ_DELTA = 1048576      # a SYN's or RST's sequence jump beyond this is not trusted (update_last_seq)

INACTIVE, SYN_SENT, SYN_ACK_SENT, PARTIAL, ESTABLISHED, CLOSED, RESET = (
    "INACTIVE", "SYN_SENT", "SYN_ACK_SENT", "PARTIAL", "ESTABLISHED", "CLOSED", "RESET")


class _Endpoint:
    """One side as the TCP analyzer keeps it (TCP_Endpoint): its state, the one before it, and the sequence
    numbers its Size() is taken from."""

    __slots__ = (
        "ack",
        "ack_wraps",
        "counts",
        "fin_cnt",
        "last",
        "last_wraps",
        "marks",
        "once",
        "prev_state",
        "start",
        "state",
    )

    def __init__(self) -> None:
        self.state = INACTIVE
        self.prev_state = INACTIVE                  # the state before the last change (SetState)
        self.start = 0                              # start_seq: the SYN's sequence number, or one before
        self.last = 0                               # last_seq: one past the highest sequence number sent
        self.ack = 0                                # ack_seq: the highest acknowledgement the peer sent of it
        self.last_wraps = 0
        self.ack_wraps = 0
        self.fin_cnt = 0
        self.once: set[str] = set()                 # letters recorded once (first sighting)
        self.marks: dict[str, int] = {}             # s, f, r -> sequence number of the last one
        self.counts: dict[str, int] = {}            # t, w -> how many seen

    def set(self, state: str) -> None:
        """SetState: the previous state is remembered only on a change."""
        if state != self.state:
            self.prev_state = self.state
            self.state = state

    def size_is_zero(self, peer: _Endpoint) -> bool:
        """Whether TCP_Endpoint::Size() is 0: the sequence space sent (or acknowledged) past the start, less
        the SYN's and a FIN's octet; 0 for a SYN sender reset with data acknowledged and the peer silent."""
        last, ack = (self.last_wraps << 32) + self.last, (self.ack_wraps << 32) + self.ack
        if self.prev_state == SYN_SENT and self.state == RESET and peer.state == INACTIVE and ack - self.start not in (0, 1):
            return True                             # NoDataAcked() false: a half-open connection found and aborted
        raw = ((last if last > ack else ack) - self.start) % (1 << 64)
        return raw <= 1 or (raw == 2 and self.fin_cnt > 0)


def conn_state(orig: str, resp: str, orig_empty: bool, resp_empty: bool, history: str) -> str:
    """main.zeek's conn_state for TCP, from the two endpoints' states (and whether each one's size is 0)."""
    o_inactive = orig in (INACTIVE, PARTIAL)
    r_inactive = resp in (INACTIVE, PARTIAL)
    if resp == RESET:
        if orig in (SYN_SENT, SYN_ACK_SENT) or (orig == RESET and orig_empty and resp_empty):
            return "REJ"
        return "RSTRH" if o_inactive else "RSTR"
    if orig == RESET:
        if r_inactive:
            plain = history.lstrip("^")
            if plain.startswith("S") and "R" in plain and not any(
                    c in "HAFGIQ" for c in plain[1:plain.index("R")]):
                return "RSTOS0"
            return "OTH"
        return "RSTO"
    if orig == CLOSED and resp == CLOSED:
        return "SF"
    if orig == CLOSED:
        return "SH" if r_inactive else "S2"
    if resp == CLOSED:
        return "SHR" if o_inactive else "S3"
    if orig == SYN_SENT and resp == INACTIVE:
        return "S0"
    if orig == ESTABLISHED and resp == ESTABLISHED:
        return "S1"
    return "OTH"


# what a packet's flags draw (from capture.FLAG_KIND, built from Packet's properties): the letter of its SYN, FIN
# or RST ("" for none; `i` or `q` for two of them), whether it has two or more of them, SYN, FIN, RST, ACK
_Shape = tuple[str, bool, bool, bool, bool, bool]


def _shape(kind: int) -> _Shape:
    syn, fin, rst, ack = bool(kind & KIND_SYN), bool(kind & KIND_FIN), bool(kind & KIND_RST), bool(kind & KIND_ACK)
    several = syn + fin + rst > 1
    single = ("h" if ack else "s") if syn else "f" if fin else "r" if rst else ""
    return ("i" if fin and rst else "q") if several else single, several, syn, fin, rst, ack


_SHAPES = {flags: _shape(kind) for flags, kind in FLAG_KIND.items()}


def zeek_ends(first: Packet) -> tuple[Addr, Addr, bool]:
    """(originator, responder, flipped) as Zeek makes them from a connection's first packet
    (TCPAnalyzer::WantConnection, the module docstring's rule)."""
    src, dst = (first.src, first.sport), (first.dst, first.dport)
    syn, ack = _SHAPES[first.flags][2], _SHAPES[first.flags][5]
    if (syn and not ack) or first.sport not in LIKELY_SERVER_PORTS:
        return src, dst, False
    if first.dport in LIKELY_SERVER_PORTS and (syn or first.sport >= first.dport):
        return src, dst, False
    return dst, src, True


def zeek_conn(packets: Sequence[Packet]) -> tuple[str, str]:
    """(conn_state, history) of one connection's packets, in capture order."""
    if not packets:
        return "OTH", ""
    row = ZeekRow(packets[0])
    row.feed(packets)
    return row.row()


_LETTER = {c: ord(c) for c in "shfrqidawt^SHFRQIDAWT"}     # each history letter, as the byte ZeekRow keeps


class ZeekRow:
    """One connection's conn.log row, fed its packets in capture order, in one batch or several (a long
    connection's middle is fed before it is let go: `facts.Connection.elide`)."""

    __slots__ = ("history", "o_sport", "o_src", "orig", "resp")

    def __init__(self, first: Packet) -> None:
        (self.o_src, self.o_sport), _, flipped = zeek_ends(first)
        self.orig, self.resp = _Endpoint(), _Endpoint()
        self.history = bytearray(b"^" if flipped else b"")    # a byte a letter: a flood of RSTs adds one each

    def row(self) -> tuple[str, str]:
        """(conn_state, history) of the packets fed so far."""
        orig, resp = self.orig, self.resp
        text = self.history.decode("ascii")
        return conn_state(orig.state, resp.state, orig.size_is_zero(resp), resp.size_is_zero(orig), text), text

    def feed(self, packets: Iterable[Packet]) -> None:
        """The next packets: one pass, each packet's flags read from one table look-up, and for each packet, in
        the order of TCPSessionAdapter::Process: its sender's sequence numbers set up (init_endpoint), its letters
        (update_history), a zero window (update_window), the acknowledgement it carries (init_peer,
        update_ack_seq), its sequence end or a retransmission (update_last_seq), then its sender's state
        transition (the endpoint state machine)."""
        shapes = _SHAPES
        o_src, o_sport, orig, resp = self.o_src, self.o_sport, self.orig, self.resp
        add = self.history.append
        letter = _LETTER
        try:
            for p in packets:
                is_orig = p.sport == o_sport and p.src == o_src
                me, peer = (orig, resp) if is_orig else (resp, orig)
                code, several, syn, fin, rst, ack = shapes[p.flags]
                length = p.length
                base = p.seq
                state = me.state
                # get_segment_len: a SYN and a FIN take an octet each; a RST's payload is not part of the stream
                past = (base + (0 if rst else length) + syn + fin) & SEQ_MOD
                # init_endpoint: the sender's first packet starts its sequence space (one before it, without a SYN)
                if state == INACTIVE:
                    if syn:
                        me.start = me.ack = base
                        me.last = past
                    else:
                        me.start = me.ack = (base - 1) & SEQ_MOD
                        me.last = base
                elif syn and (state in (ESTABLISHED, PARTIAL) or (state in (SYN_SENT, SYN_ACK_SENT) and base != me.start)
                              or (state == RESET and me.prev_state == INACTIVE)):
                    me.start = me.ack = base
                    me.last = past
                # the letters: two of SYN, FIN, RST once; one of them again only at a new sequence number; else
                # data once, else an ACK once
                if several:
                    if code not in me.once:
                        me.once.add(code)
                        add(letter[code.upper() if is_orig else code])
                elif code:
                    kind, at = ("s", base) if syn else ("f", (base + length) & SEQ_MOD) if fin else ("r", base)
                    if me.marks.get(kind) != at:
                        add(letter[code.upper() if is_orig else code])
                    me.marks[kind] = at
                elif length:
                    if "d" not in me.once:
                        me.once.add("d")
                        add(letter["D" if is_orig else "d"])
                elif ack and "a" not in me.once:
                    me.once.add("a")
                    add(letter["A" if is_orig else "a"])
                # update_window: a zero window, unless with a RST, after the sender's RST or after the peer's FIN
                if p.window == 0 and not rst and peer.state != CLOSED and state != RESET and _logarithmic(me, "w"):
                    add(letter["W" if is_orig else "w"])
                if fin:
                    me.fin_cnt += 1
                # the acknowledgement: it starts a silent peer's sequence space, else advances what the peer had
                # acknowledged (not a RST's, not one behind the peer's start)
                if ack:
                    acked = p.ack
                    if peer.state == INACTIVE:
                        peer.start = peer.ack = peer.last = (acked - 1) & SEQ_MOD
                    elif not rst:
                        delta = ((acked - peer.ack + 0x80000000) & SEQ_MOD) - 0x80000000       # seq_delta
                        if delta > 0 and not (acked == 0 and delta > _TOO_LARGE_SEQ_DELTA):
                            if acked < peer.ack:            # wrapped (get_relative_seq: no underflow then)
                                peer.ack_wraps += 1
                                peer.ack = acked
                            elif peer.ack_wraps or (acked - peer.start + 0x80000000) & SEQ_MOD >= 0x80000000:
                                peer.ack = acked            # not behind the peer's start (an underflow)
                # update_last_seq: the sender's sequence end moves on; data at or below it is retransmitted
                delta = ((past - me.last + 0x80000000) & SEQ_MOD) - 0x80000000          # seq_delta
                if (syn or rst) and not -_TOO_LARGE_SEQ_DELTA <= delta <= _TOO_LARGE_SEQ_DELTA:
                    pass
                elif (fin and me.last == (me.start + 1) & SEQ_MOD) or (state != RESET and delta > 0):
                    if past < me.last:
                        me.last_wraps += 1
                    me.last = past
                elif state != RESET and length and _logarithmic(me, "t"):
                    add(letter["T" if is_orig else "t"])
                # the state machine, for the sender
                if rst:
                    if state != CLOSED or peer.state != CLOSED:     # UpdateClosedState: a RST after both FINs changes nothing
                        me.set(RESET)
                elif state == RESET:
                    pass
                elif fin:
                    me.set(CLOSED)
                    if state in (PARTIAL, ESTABLISHED) and peer.state == RESET and peer.prev_state == CLOSED:
                        peer.set(CLOSED)                # UpdateEstablishedState: the peer's FIN then RST was a close
                elif syn:
                    if state == INACTIVE and not is_orig:
                        # UpdateInactiveState: the responder's SYN (its SYN/ACK) establishes both ends at once,
                        # the originator only if it had sent its SYN; no ACK of the originator is waited for.
                        # A SYN without ACK answering the originator's SYN/ACK reverses the roles (`^`).
                        me.set(ESTABLISHED)
                        if peer.state == SYN_SENT:
                            peer.set(ESTABLISHED)
                        elif peer.state == SYN_ACK_SENT and not ack:
                            peer.set(ESTABLISHED)
                            o_src, o_sport = p.src, p.sport
                            orig, resp = resp, orig
                            add(letter["^"])
                    elif state == INACTIVE:
                        me.set(SYN_ACK_SENT if ack else SYN_SENT)
                    elif state == PARTIAL and not ack and peer.state == INACTIVE:   # UpdateEstablishedState
                        me.set(SYN_SENT)
                else:
                    # UpdateInactiveState: the responder's bare ACK of a SYN leaves it inactive (it may ACK before
                    # its SYN/ACK); an ACK after the peer's SYN/ACK establishes (its SYN was missed)
                    if state == INACTIVE and (is_orig or length or peer.state != SYN_SENT):
                        me.set(ESTABLISHED if ack and peer.state == ESTABLISHED else PARTIAL)
                        state = me.state
                    if ack and state in (SYN_SENT, SYN_ACK_SENT) and peer.state in (SYN_SENT, SYN_ACK_SENT):
                        me.set(ESTABLISHED)
                        peer.set(ESTABLISHED)
        finally:
            self.o_src, self.o_sport, self.orig, self.resp = o_src, o_sport, orig, resp


def _logarithmic(me: _Endpoint, code: str) -> bool:
    """Count an event of a kind; true for the 1st, 10th, 100th... (those recorded)."""
    n = me.counts.get(code, 0) + 1
    me.counts[code] = n
    return n == 1 or (n % 10 == 0 and str(n).rstrip("0") == "1")
