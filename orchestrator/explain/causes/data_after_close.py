"""data-after-close: data arrives for a socket its application already closed.

Wire signature: X sends FIN, Y acknowledges it and keeps sending; X answers
Y's data with a bare `R` (seq = that segment's ack).

Apart from its neighbours: peer-restart sends the same bare RST, but there X
never sent a FIN; here X's FIN comes first, then Y's data.

References: net/ipv4/tcp_input.c tcp_rcv_state_process (data in FIN_WAIT
after the application closed: tcp_reset / TCP_MIB_ABORTONDATA);
SCENARIOS.md data-after-close, reset-vs-broken-pipe.
"""
from __future__ import annotations

from ..context import Context
from ..facts import Facts, seq_end
from ..verdict import Finding, secs
from .fin_wait2_timeout import MIN_FIN_TIMEOUT, late_data_gap

ID = "data-after-close"
FAMILIES = frozenset({"no-socket"})
TELL = "the closing side's application log: it closed before the peer stopped sending"
ZEEK = "RSTO or RSTR, history ShADaFdr (the FIN, then data, then the RST)"


def check(f: Facts, ctx: Context) -> Finding | None:
    fin = f.x_fin
    if fin is None:
        return None
    data_after = [p for p in f.ys if p.length and p.time > fin.time]
    if not data_after:
        return None
    x, y = f.x_text, f.y_text
    why = f"{x} sent FIN, then {y}'s data arrived and was answered with a bare RST"
    gap = late_data_gap(f)
    found = Finding(ID, why, TELL, decided=gap is None or gap < MIN_FIN_TIMEOUT, rank=1)
    found.add(fin, f"{x} closes: FIN")
    fin_ack = next((p for p in f.ys if p.has_ack and p.time > fin.time and p.ack == seq_end(fin)), None)
    if fin_ack is data_after[0]:   # the late data itself acknowledges the FIN: say what matters first
        found.add(fin_ack, f"{y} keeps sending after the FIN (the same segment acknowledges it)")
    else:
        found.add(fin_ack, f"{y} acknowledges the FIN")
        found.add(data_after[0], f"{y} keeps sending after the FIN")
    if f.answered is not None and f.answered is not data_after[0]:
        found.add(f.answered, "the segment the RST answers")
    found.add(f.rst, "RST without ACK, seq = the segment's ack: the socket was closed")
    found.sentence = (f"{x} had already closed the connection (FIN {secs(data_after[0].time - fin.time)} "
                      f"earlier) and {y} kept sending; data for a closed socket is answered with RST, "
                      "and the sender's next call fails with ECONNRESET or EPIPE.")
    return found
