"""data-after-close: data arrives for a socket its application already closed.

Wire signature: X sends FIN, and data from Y that X had not received when it
closed (beyond the FIN's ack) reaches X afterwards; X answers it with a bare
`R` (seq = that segment's ack). Y may have sent the data after acknowledging
the FIN, or before the FIN reached it: then the data and the FIN cross on the
wire, and a capture near Y shows the data before the FIN.

Why a RST: close() shuts the socket for reading (RCV_SHUTDOWN); in FIN_WAIT1
or FIN_WAIT2, Linux resets when a segment brings bytes beyond rcv_nxt
(`end_seq - fin` after rcv_nxt: a FIN alone does not), counts
TcpExtTCPAbortOnData and returns SKB_DROP_REASON_TCP_ABORT_ON_DATA, and the
caller sends tcp_v4_send_reset: with the segment's ACK flag set, the RST takes
seq = its ack_seq and carries no ACK (RFC 1122 §4.2.2.13: data received after
CLOSE SHOULD draw a RST). Once the orphan is a FIN_WAIT2 timewait socket,
tcp_timewait_state_process answers new data the same way (TCP_TW_RST).

A data segment of Y with a TTL none of Y's other packets has, overlapped later
by other bytes of Y at the same sequence numbers, was injected on the path (a
forged response X may have closed on): it is noted.

Apart from its neighbours: peer-restart sends the same bare RST, but there X
never sent a FIN; here X's FIN comes first, then Y's new data reaches it.
An in-order FIN with no new data is acknowledged, not reset: a RST to that is
timewait-overflow.

References: net/ipv4/tcp_input.c tcp_rcv_state_process (step 7, "RFC 1122
says we MUST send a reset"); net/ipv4/tcp_ipv4.c tcp_v4_do_rcv, tcp_v4_send_reset
(`if (th->ack) rep.th.seq = th->ack_seq`); net/ipv4/tcp_minisocks.c
tcp_timewait_state_process; SCENARIOS.md data-after-close, reset-vs-broken-pipe.
"""
from __future__ import annotations

from ...capture import Packet
from ...connections import SEQ_MOD, seq_after
from ..context import Context
from ..facts import Facts, seq_end
from ..verdict import Finding, secs
from .fin_wait2_timeout import MIN_FIN_TIMEOUT, late_data_gap

ID = "data-after-close"
FAMILIES = frozenset({"no-socket"})
TELL = ("the closing side's application log: it closed before the peer stopped sending; "
        "nstat TcpExtTCPAbortOnData on the closing host")
ZEEK = "RSTO or RSTR, history ShADaFdr (the FIN, then data, then the RST)"
AMBIGUOUS_AS = {"no-socket": (10, "its application had closed the socket and the data came after")}


def late_data(f: Facts, fin: Packet) -> list[Packet]:
    """Y's data segments bringing bytes X had not received when it sent its FIN (beyond the FIN's
    ack): bytes that reach a socket already closed for reading."""
    if not fin.has_ack:
        return [p for p in f.ys if p.length and p.time > fin.time]
    return [p for p in f.ys if p.length and seq_after((p.seq + p.length) & SEQ_MOD, fin.ack)]


def injected(f: Facts) -> tuple[Packet, Packet, int] | None:
    """(the injected segment, the genuine one overlapping it, Y's TTL) when a data segment of Y has a TTL
    none of Y's other packets has (they share one) and later bytes of Y overlap it with Y's own TTL."""
    mine = [p for p in f.ys if not p.is_rst]
    for seg in mine:
        rest = {q.ttl for q in mine if q is not seg}
        if not seg.length or seg.ttl is None or len(rest) != 1 or None in rest or seg.ttl in rest:
            continue
        end = (seg.seq + seg.length) & SEQ_MOD
        real = next((q for q in mine if q.length and q.time > seg.time and seq_after(end, q.seq)
                     and seq_after((q.seq + q.length) & SEQ_MOD, seg.seq)), None)
        if real is not None:
            (ttl,) = rest
            return seg, real, ttl or 0
    return None


def check(f: Facts, ctx: Context) -> Finding | None:
    fin = f.x_fin
    if fin is None:
        return None
    late = late_data(f, fin)
    if not late:
        return None
    x, y = f.x_text, f.y_text
    crossed = late[0].time < fin.time
    if crossed:
        why = (f"{y}'s {late[0].length} bytes crossed {x}'s FIN (they are beyond its ack "
               f"{fin.ack if fin.rel_ack is None else fin.rel_ack}): they "
               "reached a socket already closed for reading, and were answered with a bare RST")
    else:
        why = f"{x} sent FIN, then {y}'s data arrived and was answered with a bare RST"
    gap = late_data_gap(f)
    found = Finding(ID, why, TELL, decided=gap is None or gap < MIN_FIN_TIMEOUT, rank=1)
    if crossed:
        found.add(late[0], f"{y} sends {late[0].length} bytes" + (" and FIN" if late[0].is_fin else ""))
        found.add(fin, f"{x} closes: FIN without those bytes (the two cross)")
    else:
        found.add(fin, f"{x} closes: FIN")
        fin_ack = next((p for p in f.ys if p.has_ack and p.time > fin.time and p.ack == seq_end(fin)), None)
        if fin_ack is late[0]:   # the late data itself acknowledges the FIN: say what matters first
            found.add(fin_ack, f"{y} keeps sending after the FIN (the same segment acknowledges it)")
        else:
            found.add(fin_ack, f"{y} acknowledges the FIN")
            found.add(late[0], f"{y} keeps sending after the FIN")
    if f.answered is not None and f.answered is not late[0]:
        found.add(f.answered, "the segment the RST answers")
    found.add(f.rst, "RST without ACK, seq = the segment's ack: the socket was closed")
    fake = injected(f)
    if fake is not None:
        seg, real, ttl = fake
        at = seg.seq if seg.rel_seq is None else seg.rel_seq
        found.notes.append(f"{y}'s {seg.length} bytes at seq {at} arrived with TTL {seg.ttl}"
                           + (f" and IP ID {seg.ip_id}" if seg.ip_id is not None else "")
                           + f", while its other packets arrive with TTL {ttl}, and {real.length} other bytes "
                           "came later at the same sequence numbers: that segment was injected on the path "
                           f"(a forged response), and {x} may have closed on it")
    if crossed:
        found.sentence = (f"{x} closed the connection while {y}'s last {late[0].length} bytes were on their "
                          f"way: they arrived after its FIN, at a socket closed for reading, and a closed "
                          "socket answers new data with RST (RFC 1122 §4.2.2.13; Linux counts it in "
                          f"TcpExtTCPAbortOnData), so {y}'s next call fails with ECONNRESET or EPIPE.")
    else:
        found.sentence = (f"{x} had already closed the connection and {y} kept sending (its data came "
                          f"{secs(late[0].time - fin.time)} after the FIN); data for a closed socket is answered "
                          "with RST, and the sender's next call fails with ECONNRESET or EPIPE.")
    return found
