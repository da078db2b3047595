"""Zeek's `conn_state` and `history` for a connection, so explain's output joins Zeek's conn.log.

Follows base/protocols/conn/main.zeek (the conn_state function and the
history letters) and the TCP analyzer's endpoint states and update_history:

* a packet with two of SYN, FIN, RST is `q` (`i` for FIN+RST); otherwise a
  SYN is `s` (`h` with ACK), a FIN `f`, a RST `r`, each added again only when
  its sequence number differs from the last one of its kind (a FIN's is taken
  at the end of its data); a packet with none of them is `d` when it carries
  data, else `a` when it carries an ACK; `d` and `a` are recorded once;
* `t` (retransmitted payload) and `w` (zero window) are recorded when first
  seen, again at 10, again at 100...;
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
SYN), ESTABLISHED, CLOSED (sent FIN), RESET (sent RST).
"""
from __future__ import annotations

from collections.abc import Sequence

from ..capture import FLAG_KIND, KIND_ACK, KIND_FIN, KIND_RST, KIND_SYN, Packet
from ..connections import SEQ_MOD, seq_after

__all__ = ["LIKELY_SERVER_PORTS", "conn_state", "zeek_conn", "zeek_ends"]

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

INACTIVE, SYN_SENT, SYN_ACK_SENT, PARTIAL, ESTABLISHED, CLOSED, RESET = (
    "INACTIVE", "SYN_SENT", "SYN_ACK_SENT", "PARTIAL", "ESTABLISHED", "CLOSED", "RESET")


class _Endpoint:
    __slots__ = ("closed_before_reset", "counts", "last", "max_end", "once", "size", "state")

    def __init__(self) -> None:
        self.state = INACTIVE
        self.closed_before_reset = False            # RESET entered from CLOSED (Zeek's prev_state)
        self.size = 0                               # payload bytes sent
        self.once: set[str] = set()                 # letters recorded once (first sighting)
        self.last: dict[str, int] = {}              # S/H, F, R -> last sequence number
        self.counts: dict[str, int] = {}            # T, W -> how many seen
        self.max_end: int | None = None             # highest sequence number sent so far


def conn_state(orig: str, resp: str, orig_size: int, resp_size: int, history: str) -> str:
    """main.zeek's conn_state for TCP, from the two endpoints' states."""
    o_inactive = orig in (INACTIVE, PARTIAL)
    r_inactive = resp in (INACTIVE, PARTIAL)
    if resp == RESET:
        if orig in (SYN_SENT, SYN_ACK_SENT) or (orig == RESET and orig_size == 0 and resp_size == 0):
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
    """(conn_state, history) of one connection's packets, in capture order: one pass, each packet's flags read
    from one table look-up, its letters (as the module docstring says) and its sender's state transition
    (the TCP analyzer's endpoint state machine) written out in the loop."""
    if not packets:
        return "OTH", ""
    shapes = _SHAPES
    (o_src, o_sport), _, flipped = zeek_ends(packets[0])
    orig, resp = _Endpoint(), _Endpoint()
    history: list[str] = ["^"] if flipped else []
    add = history.append
    for p in packets:
        is_orig = p.sport == o_sport and p.src == o_src
        me, peer = (orig, resp) if is_orig else (resp, orig)
        code, several, syn, fin, rst, ack = shapes[p.flags]
        length = p.length
        # the letters: two of SYN, FIN, RST once; one of them again only at a new sequence number; else
        # data once, else an ACK once; then retransmitted payload and a zero window, logarithmically
        if several:
            if code not in me.once:
                me.once.add(code)
                add(code.upper() if is_orig else code)
        elif code:
            kind, at = ("s", p.seq) if syn else ("f", (p.seq + length) & SEQ_MOD) if fin else ("r", p.seq)
            if me.last.get(kind) != at:
                add(code.upper() if is_orig else code)
            me.last[kind] = at
        elif length:
            if "d" not in me.once:
                me.once.add("d")
                add("D" if is_orig else "d")
        elif ack and "a" not in me.once:
            me.once.add("a")
            add("A" if is_orig else "a")
        if length and not syn:
            end = (p.seq + length) & SEQ_MOD
            if me.max_end is None or seq_after(end, me.max_end):
                me.max_end = end
            elif _logarithmic(me, "t"):
                add("T" if is_orig else "t")
        if not (rst or syn) and p.window == 0 and _logarithmic(me, "w"):
            add("W" if is_orig else "w")
        # the state machine, for the sender
        state = me.state
        if rst:
            if state != CLOSED or peer.state != CLOSED:     # UpdateClosedState: a RST after both FINs changes nothing
                me.state = RESET
                me.closed_before_reset = state == CLOSED
        elif state == RESET:
            pass
        elif fin:
            me.state = CLOSED
            if state in (PARTIAL, ESTABLISHED) and peer.state == RESET and peer.closed_before_reset:
                peer.state = CLOSED             # UpdateEstablishedState: the peer's FIN then RST was a close
        elif syn:
            if state == INACTIVE and not is_orig:
                # UpdateInactiveState: the responder's SYN (its SYN/ACK) establishes both ends at once,
                # the originator only if it had sent its SYN; no ACK of the originator is waited for.
                # A SYN without ACK answering the originator's SYN/ACK reverses the roles (`^`).
                me.state = ESTABLISHED
                if peer.state == SYN_SENT:
                    peer.state = ESTABLISHED
                elif peer.state == SYN_ACK_SENT and not ack:
                    peer.state = ESTABLISHED
                    o_src, o_sport = p.src, p.sport
                    orig, resp = resp, orig
                    add("^")
            elif state == INACTIVE:
                me.state = SYN_ACK_SENT if ack else SYN_SENT
            elif state == PARTIAL and not ack and peer.state == INACTIVE:   # UpdateEstablishedState
                me.state = SYN_SENT
        else:
            # UpdateInactiveState: the responder's bare ACK of a SYN leaves it inactive (it may ACK before
            # its SYN/ACK); an ACK after the peer's SYN/ACK establishes (its SYN was missed)
            if state == INACTIVE and (is_orig or length or peer.state != SYN_SENT):
                me.state = state = ESTABLISHED if ack and peer.state == ESTABLISHED else PARTIAL
            if ack and state in (SYN_SENT, SYN_ACK_SENT) and peer.state in (SYN_SENT, SYN_ACK_SENT):
                me.state = peer.state = ESTABLISHED
        me.size += length
    text = "".join(history)
    return conn_state(orig.state, resp.state, orig.size, resp.size, text), text


def _logarithmic(me: _Endpoint, code: str) -> bool:
    """Count an event of a kind; true for the 1st, 10th, 100th... (those recorded)."""
    n = me.counts.get(code, 0) + 1
    me.counts[code] = n
    return n == 1 or (n % 10 == 0 and str(n).rstrip("0") == "1")
