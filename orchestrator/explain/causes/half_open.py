"""half-open: the server answered SYN/ACK and the client never completed the handshake.

Wire signature: the client's SYN, the server's SYN/ACK acknowledging it, then
nothing from the client (no ACK, no RST); the server retransmits its SYN/ACK
with RTO backoff (1 s, 2 s, 4 s... on Linux, tcp_synack_retries times; 3 s,
6 s, 12 s on older stacks) until its SYN_RECV entry expires. The port is open.

Who does this: a half-open (SYN) scanner whose host neither answers the
SYN/ACK with RST (its firewall drops it, or the capture missed it) nor
completes it; a client that vanished after its SYN (crashed, moved, or its
SYN was spoofed: a SYN flood's backscatter looks the same from the server).

Apart from its neighbours: syn-scan is the same probe where the scanner's
host does reset the SYN/ACK; accept-queue-overflow retransmits SYN/ACKs too,
but there the client's ACK came and was dropped by the server. A lone SYN/ACK
at the very end of a capture is not called unanswered (the ACK may just be
missing).

References: net/ipv4/inet_connection_sock.c reqsk_timer_handler (SYN/ACK
retransmits, tcp_synack_retries); nmap's "TCP SYN (Stealth) Scan (-sS)"
(https://nmap.org/book/synscan.html); RFC 4987 (SYN flooding).
"""
from __future__ import annotations

from itertools import pairwise

from ..context import Context
from ..facts import Facts
from ..result import HALF_OPEN
from ..verdict import Finding, secs
from .silent_drop import SYN_GRACE

ID = HALF_OPEN
FAMILIES = frozenset({"half-open"})
TELL = "the client's own record (a scanner's 'open' ports), or a capture on the client showing whether the SYN/ACKs reached it"
ZEEK = "S1, history Sh (the SYN/ACK establishes both ends in Zeek's analyzer)"
SCAN_MIN_PORTS = 10      # ports of one host probed from one client: fewer is no scan


def check(f: Facts, ctx: Context) -> Finding | None:
    synacks = f.ys
    if len(synacks) < 2 and ctx.end_time - synacks[-1].time < SYN_GRACE:
        return None
    syn = next((p for p in f.xs if p.is_first_syn), None)
    x, y = f.x_text, f.y_text
    n = len(synacks)
    found = Finding(ID, f"SYN/ACK sent {n} time(s), never acknowledged", TELL, decided=True)
    if syn is not None:
        found.add(syn, "the SYN")
    found.add(synacks[0], f"{y} answers SYN/ACK: the port is open")
    if n > 1:
        gaps = ", ".join(secs(b.time - a.time) for a, b in pairwise(synacks))
        found.add(synacks[-1], f"the last of {n - 1} SYN/ACK retransmission{'s' if n > 2 else ''} ({gaps} apart)")
    span = synacks[-1].time - synacks[0].time
    ports = ctx.ports_probed(f.x[0], f.y[0])
    who = (f"{f.x[0]} probed {ports} ports of {f.y[0]} with SYNs alone: a half-open scan whose host did not "
           "reset the SYN/ACK (its firewall dropped it, or the RST is not in the capture)"
           if ports >= SCAN_MIN_PORTS else
           "a half-open scan, or a client that vanished after its SYN (or whose SYN was spoofed)")
    found.sentence = (f"{y} answered {x}'s SYN with SYN/ACK{f' {n} times over {secs(span)}' if n > 1 else ''}, "
                      f"so the port is open, and {x} never completed the handshake: neither ACK nor RST came "
                      f"back; {who}. The server drops its half-open entry after its SYN/ACK retries.")
    return found
