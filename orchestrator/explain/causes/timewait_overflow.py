"""timewait-overflow: the closer's socket was freed at once, so the peer's FIN finds none.

Wire signature: X closes first (FIN), Y acknowledges the FIN, then a later
segment of Y that brings no byte X had not received (its own FIN, in order,
or an ACK or keepalive probe) is answered with a bare `R` (seq = its ack).

Why: Linux never resets such a segment while the closed socket lives. An
orphan in FIN_WAIT2 becomes a FIN_WAIT2 timewait socket (tcp_time_wait), and
tcp_timewait_state_process answers an in-order FIN by entering TIME_WAIT and
sending an ACK, an out-of-window probe with an ACK, a duplicate ACK with
nothing; tcp_rcv_state_process resets only a segment bringing bytes beyond
rcv_nxt (`end_seq - fin` after rcv_nxt), which none of these does.
So the socket was gone: tcp_time_wait could not allocate the timewait socket
(net.ipv4.tcp_max_tw_buckets reached: TcpExtTCPTimeWaitOverflow, "TCP: time
wait bucket table overflow") and called tcp_done, and the FIN met no socket
(tcp_v4_send_reset, NO_SOCKET). A FIN_WAIT2 lifetime cannot run out sooner than
about a second (tcp_fin_time: at least 3.5 RTOs): after a longer silence
fin-wait2-timeout fits too. A stack that is not Linux's may differ.

Apart from its neighbours: data-after-close needs new data after the FIN;
fin-wait2-timeout needs a silence long enough for the FIN_WAIT2 timer;
peer-restart (a host that lost every socket) stays a candidate, as a capture
cannot show a restart in between.

References: net/ipv4/tcp_minisocks.c tcp_time_wait (inet_twsk_alloc,
LINUX_MIB_TCPTIMEWAITOVERFLOW), tcp_timewait_state_process (TCP_FIN_WAIT2: "FIN
arrived, enter true time-wait state"); net/ipv4/tcp_input.c
tcp_rcv_state_process; Documentation/networking/ip-sysctl.rst tcp_max_tw_buckets.
"""
from __future__ import annotations

from ...connections import SEQ_MOD, seq_after
from ..context import Context
from ..facts import Facts, seq_end
from ..verdict import Finding, secs

ID = "timewait-overflow"
FAMILIES = frozenset({"no-socket"})
TELL = ("`nstat -az TcpExtTCPTimeWaitOverflow` and 'time wait bucket table overflow' in the closing host's "
        "kernel log; `ss -tan state time-wait | wc -l` against net.ipv4.tcp_max_tw_buckets")
ZEEK = "RSTR or RSTO, history ShAFafr (the first FIN, the peer's FIN, the RST)"
AMBIGUOUS_AS = {"no-socket": (20, "it had freed its closed socket at once (its TIME_WAIT table full)")}


def check(f: Facts, ctx: Context) -> Finding | None:
    fin, seg = f.x_fin, f.answered
    if fin is None or seg is None or seg.time < fin.time:
        return None
    acks = [p.ack for p in f.xs if p.has_ack]
    rcv_nxt = acks[-1] if acks else fin.ack
    if (seg.is_fin and seg.seq != rcv_nxt) or any(p.length and seq_after((p.seq + p.length) & SEQ_MOD, fin.ack)
                                                  for p in f.ys):
        return None        # out of order, or new data after the FIN: data-after-close's case
    fin_acked = next((p for p in f.ys if p.has_ack and p.ack == seq_end(fin)), None)
    if fin_acked is None or fin_acked is seg:
        return None
    x, y = f.x_text, f.y_text
    quiet = seg.time - fin_acked.time
    what = "FIN" if seg.is_fin else ("segment" if seg.length else "ACK")
    answer = ("acknowledges (FIN_WAIT2 to TIME_WAIT)" if seg.is_fin
              else "acknowledges or ignores, never resets")
    found = Finding(ID, f"{y}'s {what} brought no new data, which a closed Linux socket {answer}; a RST means "
                        "the closed socket had already been freed: the TIME_WAIT table was full "
                        "(tcp_max_tw_buckets)", TELL, rank=0)
    found.add(fin, f"{x} closes first: FIN")
    found.add(fin_acked, f"{y} acknowledges it ({x} is in FIN_WAIT2)")
    found.add(seg, (f"{y} closes too: FIN" if seg.is_fin else f"{y}'s next {what}") +
              f" {secs(quiet)} later, no new data")
    found.add(f.rst, f"RST without ACK, seq = the {what}'s ack: no socket took it")
    found.sentence = (f"{x} closed first and its FIN was acknowledged, but {y}'s {what} {secs(quiet)} later "
                      f"found no socket: {x}'s kernel had freed the closed socket instead of keeping it in "
                      "FIN_WAIT2/TIME_WAIT (its TIME_WAIT table was full), so it answered with RST.")
    return found
