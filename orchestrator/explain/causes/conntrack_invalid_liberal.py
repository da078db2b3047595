"""conntrack-invalid-liberal: an out-of-window segment kept its NAT and drew an ACK, so nothing was reset.

The other half of conntrack-invalid-unnat. With
net.netfilter.nf_conntrack_tcp_be_liberal=1 on the NAT box, tcp_in_window()
still finds the backend's segment "over the upper bound" of the window, but
nf_tcp_log_invalid() accepts it for a liberal connection instead of marking
it INVALID: it stays with its connection and is reverse-NATed like any other.
The client's TCP finds it outside its receive window and does what RFC 9293
asks for an unacceptable segment: it answers with an ACK carrying its own
current numbers (tcp_validate_incoming, tcp_send_dupack). The sender
retransmits the data in window, and the connection carries on.

Wire signature: no RST on the connection; a data segment far above any
window its receiver offered (more than the largest window field scaled by
2^14), answered by the receiver's duplicate ACK (nothing new acknowledged).
This is reported although nothing was reset, because behind a strict NAT the
same segment resets the connection.

Apart from its neighbours: conntrack-invalid-unnat is the same segment
answered with a RST (it escaped reverse NAT). A segment below the window (an
old retransmission) also draws a duplicate ACK, but conntrack ignores those
since Linux 6.0 (NFCT_TCP_IGNORE) whatever be_liberal says, so it is not
reported. From one capture alone a NAT is not always visible: where there is
none, the ACK is simply TCP doing its job.

References: net/netfilter/nf_conntrack_proto_tcp.c tcp_in_window,
nf_tcp_log_invalid (tn->tcp_be_liberal); net/ipv4/tcp_input.c
tcp_validate_incoming; RFC 9293 §3.10.7.4; kubernetes/kubernetes#120412;
scenario conntrack-invalid-liberal.
"""
from __future__ import annotations

from ..context import Context
from ..facts import Facts, window_offset
from ..verdict import Finding, secs

ID = "conntrack-invalid-liberal"
FAMILIES = frozenset({"out-of-window"})
TELL = ("`sysctl net.netfilter.nf_conntrack_tcp_be_liberal` on the NAT box (1: out-of-window segments keep "
        "their NAT); `conntrack -S` counting no invalid packet for it")
ZEEK = "no R in the history: the connection was not reset"


def check(f: Facts, ctx: Context) -> Finding | None:
    seg, ack = f.rst, f.answered
    jump = window_offset(seg, f.xs, f.ys, f.conn.elided)
    if ack is None or jump is None:
        return None
    x, y = f.x_text, f.y_text
    size = f"2^{jump.bit_length() - 1}" if jump & (jump - 1) == 0 else str(jump)
    found = Finding(ID, f"{x}'s segment lies {size} bytes beyond its own sequence space, above any window "
                        f"{y} offered, and {y} answered it with a duplicate ACK, not a RST: it arrived on its "
                        "own connection", TELL, decided=True)
    found.add(f.xs[-1] if f.xs else None, f"{x}'s previous segment: its sequence space")
    found.add(seg, f"{size} bytes beyond it: out of window (a strict conntrack marks it INVALID)")
    found.add(ack, f"{y}'s duplicate ACK (RFC 9293: an unacceptable segment is answered with an ACK)")
    again = next((p for p in f.conn.pk if p.time > ack.time and (p.src, p.sport) == f.x and p.length
                  and p.seq != seg.seq), None)
    if again is not None:     # a note, not evidence: the comment `--annotate` writes goes on the last evidence
        found.notes.append(f"{x} sent the data again in window {secs(again.time - seg.time)} after the "
                           "out-of-window copy, and the connection went on")
    found.sentence = (f"{x} sent a segment {size} bytes beyond its own sequence space. Through a NAT box whose "
                      "conntrack marks such a segment INVALID it would have escaped reverse NAT and the "
                      f"receiver would have reset the connection (conntrack-invalid-unnat); here it reached "
                      f"{y} on its own connection and drew a duplicate ACK, and the connection went on: "
                      "nothing was reset. Any NAT on the path kept the segment with its connection "
                      "(nf_conntrack_tcp_be_liberal=1 does).")
    return found
