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
* upper case for the originator. The originator is the SYN's sender; a
  connection seen first through the responder's SYN/ACK is flipped (`^`).

Endpoint states: INACTIVE, SYN_SENT, SYN_ACK_SENT, PARTIAL (began without a
SYN), ESTABLISHED, CLOSED (sent FIN), RESET (sent RST).
"""
from __future__ import annotations

from collections.abc import Sequence

from ..capture import Packet
from ..connections import SEQ_MOD, seq_after

__all__ = ["conn_state", "zeek_conn"]

INACTIVE, SYN_SENT, SYN_ACK_SENT, PARTIAL, ESTABLISHED, CLOSED, RESET = (
    "INACTIVE", "SYN_SENT", "SYN_ACK_SENT", "PARTIAL", "ESTABLISHED", "CLOSED", "RESET")


class _Endpoint:
    __slots__ = ("counts", "last", "max_end", "once", "size", "state")

    def __init__(self) -> None:
        self.state = INACTIVE
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


def zeek_conn(packets: Sequence[Packet]) -> tuple[str, str]:
    """(conn_state, history) of one connection's packets, in capture order."""
    if not packets:
        return "OTH", ""
    first_syn = next((p for p in packets if "S" in p.flags), None)
    flipped = first_syn is not None and "." in first_syn.flags
    if first_syn is None:
        orig_addr = (packets[0].src, packets[0].sport)
    elif flipped:
        orig_addr = (first_syn.dst, first_syn.dport)
    else:
        orig_addr = (first_syn.src, first_syn.sport)
    orig, resp = _Endpoint(), _Endpoint()
    history: list[str] = ["^"] if flipped else []
    add = history.append
    o_src, o_sport = orig_addr
    for p in packets:
        is_orig = p.sport == o_sport and p.src == o_src
        me, peer = (orig, resp) if is_orig else (resp, orig)
        flags = p.flags
        length = p.length
        if length or "S" in flags or "F" in flags or "R" in flags or p.window == 0:
            letters = _letters(p, me)
            if letters:
                for letter in letters:
                    add(letter.upper() if is_orig else letter)
        elif "." in flags and "a" not in me.once:     # a bare ACK: _letters' only letter for it
            me.once.add("a")
            add("A" if is_orig else "a")
        _transition(p, me, peer, is_orig)
        me.size += length
    text = "".join(history)
    return conn_state(orig.state, resp.state, orig.size, resp.size, text), text


def _letters(p: Packet, me: _Endpoint) -> list[str]:
    """The history letters (lower case) this packet adds for its sender."""
    out: list[str] = []
    flags = p.flags
    syn, fin, rst = "S" in flags, "F" in flags, "R" in flags
    bits = syn + fin + rst
    if bits > 1:
        code = "i" if fin and rst else "q"
        if code not in me.once:
            me.once.add(code)
            out.append(code)
    elif bits == 1:
        if syn:
            code = "h" if "." in flags else "s"
            seq = p.seq
        elif fin:
            code, seq = "f", (p.seq + p.length) & SEQ_MOD
        else:
            code, seq = "r", p.seq
        kind = "s" if code in "sh" else code
        if kind not in me.last or me.last[kind] != seq:
            out.append(code)
        me.last[kind] = seq
    elif p.length:
        if "d" not in me.once:
            me.once.add("d")
            out.append("d")
    elif "." in flags and "a" not in me.once:
        me.once.add("a")
        out.append("a")
    if p.length and not syn:
        end = (p.seq + p.length) & SEQ_MOD
        if me.max_end is not None and not seq_after(end, me.max_end):
            out += _logarithmic(me, "t")
        if me.max_end is None or seq_after(end, me.max_end):
            me.max_end = end
    if p.window == 0 and not rst and not syn:
        out += _logarithmic(me, "w")
    return out


def _logarithmic(me: _Endpoint, code: str) -> list[str]:
    """Record the 1st, 10th, 100th... event of a kind."""
    n = me.counts.get(code, 0) + 1
    me.counts[code] = n
    return [code] if n == 1 or (n % 10 == 0 and str(n).rstrip("0") == "1") else []


def _transition(p: Packet, me: _Endpoint, peer: _Endpoint, is_orig: bool) -> None:
    """The TCP analyzer's endpoint state machine, for the packet's sender."""
    flags = p.flags
    if "R" in flags:
        me.state = RESET
        return
    if me.state == RESET:
        return
    if "F" in flags:
        me.state = CLOSED
        return
    if "S" in flags:
        if me.state == INACTIVE and not is_orig:
            # UpdateInactiveState: the responder's SYN (its SYN/ACK) establishes both ends at once,
            # the originator only if it had sent its SYN; no ACK of the originator is waited for.
            me.state = ESTABLISHED
            if peer.state == SYN_SENT:
                peer.state = ESTABLISHED
        elif me.state in (INACTIVE, PARTIAL):
            me.state = SYN_ACK_SENT if "." in flags else SYN_SENT
        return
    if me.state == INACTIVE:
        me.state = PARTIAL
    if "." in flags and me.state in (SYN_SENT, SYN_ACK_SENT) and peer.state in (SYN_SENT, SYN_ACK_SENT):
        me.state = ESTABLISHED
        peer.state = ESTABLISHED
