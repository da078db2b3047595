"""retransmission-timeout: a segment retransmitted until the sender gave up.

Wire signature: the same segment sent again and again with growing gaps (RTO
backoff) and never acknowledged; the sender gives up silently (Linux:
tcp_write_err, ETIMEDOUT for the application, nothing on the wire) and
answers the peer's later segment with a bare `R`.

Apart from its neighbours: from the other side (where the retransmissions
never arrived) the bare `R` looks like peer-restart; it stays a candidate
there unless the capture was taken on the resetting host itself. A sender
that resets with `R.` itself when it gives up is retransmission-abort (the
Windows behaviour).

References: net/ipv4/tcp_timer.c tcp_retransmit_timer, tcp_write_timeout
(TCP_USER_TIMEOUT, tcp_retries2); SCENARIOS.md retransmission-timeout.
"""
from __future__ import annotations

from itertools import pairwise

from ...capture import Packet
from ...connections import seq_after
from ..context import Context
from ..facts import Facts, gaps, seq_end
from ..verdict import Finding, secs
from .fin_wait2_timeout import late_data_gap

ID = "retransmission-timeout"
FAMILIES = frozenset({"no-socket"})
TELL = ("a capture on the resetting host's side showing its unanswered retransmissions; "
        "nstat TcpExtTCPAbortOnTimeout on that host")
ZEEK = "RSTO or RSTR, history ShADdtr (t: the retransmissions)"
AMBIGUOUS_AS = {"no-socket": (50, "it gave up on the connection earlier")}


def check(f: Facts, ctx: Context) -> Finding | None:
    train = f.retransmissions
    if train:
        return _decided(f, train)
    if f.family == "no-socket" and f.origin != "here" and late_data_gap(f) is None and not _fin_acked(f):
        return Finding(ID, f"{f.x_text} may have given up on the connection earlier after "
                           "retransmissions that never reached this capture point; then it answers "
                           "this way too", TELL, rank=1)
    return None


def _fin_acked(f: Facts) -> bool:
    """Y acknowledged X's FIN: X had nothing left to send or retransmit, so it cannot have timed out."""
    fin = f.x_fin
    return fin is not None and any(p.has_ack and p.time > fin.time and not seq_after(seq_end(fin), p.ack)
                                   for p in f.ys)


def _decided(f: Facts, train: list[Packet]) -> Finding:
    x, y = f.x_text, f.y_text
    between = gaps(train)
    growing = all(g2 >= g1 * 0.8 for g1, g2 in pairwise(between))
    gap_text = ", ".join(secs(g) for g in between)
    why = (f"the same segment was sent {len(train)} times ({gap_text} apart"
           f"{', growing' if growing else ''}) and never acknowledged")
    found = Finding(ID, why, TELL, decided=True)
    found.add(train[0], f"{x} sends a segment")
    for p in train[1:-1]:
        found.add(p, "retransmitted, unanswered")
    found.add(train[-1], f"retransmission {len(train) - 1}, still unanswered")
    later = [p for p in f.ys if p.time > train[-1].time]
    found.add(f.answered or (later[-1] if later else None), f"{y}'s later segment")
    found.add(f.rst, "RST without ACK: the connection was already gone on this side")
    tail = (f"gave up on the connection (ETIMEDOUT for the application, silently on the wire), "
            f"and answered {y}'s later segment with RST")
    found.sentence = (f"{x} retransmitted the same segment {len(train) - 1} times with "
                      f"{'growing ' if growing else ''}gaps and never got an acknowledgment (the peer or "
                      f"the path had vanished); it {tail}.")
    if not growing:
        found.notes.append("the retransmission gaps do not grow as an RTO backoff's would")
    return found
