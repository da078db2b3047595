"""syn-scan: a half-open (SYN) scan: the scanner resets each port that answers SYN/ACK.

Wire signature: one client sends SYNs to many ports of one host (nmap -sS,
masscan, zmap); a port that answers with SYN/ACK (open) gets a bare `R` from
the client with seq = ISN+1, before any ACK: the connection is never
completed. The scanner writes its SYNs on a raw socket, so its host's kernel
has no socket for them and answers the SYN/ACK itself (tcp_v4_send_reset,
seq = the SYN/ACK's ack, no ACK flag, IP ID 0), often beside the scanner's own
RST, which carries the SYNs' TTL. A capture of the scanner's outgoing packets
only still shows the RST: seq = ISN+1 without ACK answers a SYN/ACK that
acknowledged the SYN, so the port was open even where the SYN/ACK is missing.

Apart from its neighbours: connect-timeout is the same RST from one client
that gave up on one connect(); here the client probed many ports of the same
host and sent nothing but SYNs and RSTs. Ports that stayed silent are not
called dropped in a one-sided capture.

References: net/ipv4/tcp_ipv4.c tcp_v4_send_reset (`if (th->ack) rep.th.seq =
th->ack_seq`); RFC 9293 §3.10.7.1 (a segment for no connection); nmap's
"TCP SYN (Stealth) Scan (-sS)" (https://nmap.org/book/synscan.html).
"""
from __future__ import annotations

from ...connections import SEQ_MOD
from ..context import Context
from ..facts import Facts
from ..verdict import Finding

ID = "syn-scan"
FAMILIES = frozenset({"late-synack", "no-socket"})
TELL = "the scanner's own record (nmap's 'open' ports), or a capture on the scanned host showing its SYN/ACKs"
ZEEK = "RSTO, history ShR (or SR where the SYN/ACK was not captured)"
SCAN_MIN_PORTS = 10      # ports of one host probed from one client: fewer is no scan


def check(f: Facts, ctx: Context) -> Finding | None:
    syns = f.xs
    if f.x_role != "client" or f.rst.has_ack or not syns or not all(p.is_syn and not p.has_ack for p in syns):
        return None
    isn = syns[0].seq
    if f.rst.seq != (isn + 1) & SEQ_MOD:
        return None
    synack = f.answered if f.family == "late-synack" else None
    if f.family == "late-synack" and (synack is None or synack.ack != (isn + 1) & SEQ_MOD):
        return None
    if f.family == "no-socket" and f.ys:
        return None
    ports = ctx.ports_probed(f.x[0], f.y[0])
    if ports < SCAN_MIN_PORTS:
        return None
    x, y = f.x_text, f.y_text
    found = Finding(ID, f"{f.x[0]} probed {ports} ports of {f.y[0]} with SYNs alone, and reset this one with "
                        "RST seq = ISN+1 before completing the handshake", TELL, decided=True)
    found.add(syns[0], f"the scanner's SYN (one of {ports} ports probed)")
    if synack is not None:
        found.add(synack, f"{y} answers SYN/ACK: the port is open")
        seen = "answered with SYN/ACK"
    else:
        seen = "answered with SYN/ACK (not in this capture: a RST with seq = ISN+1 and no ACK answers only it)"
    found.add(f.rst, "RST without ACK, seq = ISN+1: the half-open connection torn down")
    if f.rst.ttl is not None and syns[0].ttl is not None and f.rst.ttl != syns[0].ttl:
        found.notes.append(f"the RST's TTL ({f.rst.ttl}) differs from the SYNs' ({syns[0].ttl}): the scanner "
                           "crafts its SYNs itself, and its host's kernel, with no socket for them, answered "
                           "the SYN/ACK")
    later = [p for p in f.conn.pk if p.is_rst and p is not f.rst and (p.src, p.sport) == f.x]
    if later and later[0].ttl is not None and later[0].ttl == syns[0].ttl:
        found.notes.append("the later RST carries the SYNs' TTL: the scanner's own")
    found.sentence = (f"{x} was scanning {f.y[0]} (a half-open SYN scan, {ports} ports): port {f.y[1]} "
                      f"{seen}, so it is open, and the scanner reset the connection instead of completing "
                      "it; nothing failed here but the probe's connection, by design.")
    return found
