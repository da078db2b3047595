"""retransmission-abort: the sender retransmitted a segment until it gave up, then reset the connection itself.

Wire signature: one segment sent again and again with growing (then capped)
gaps, never acknowledged, nothing new sent meanwhile, and then `R.` from the
sender at about the moment its next retransmission was due: the
retransmission timer fired one last time and aborted the connection with a
RST. Windows does this after TcpMaxDataRetransmissions (5 by default; some
servers many more, over tens of seconds).

Apart from its neighbours: Linux gives up silently (tcp_write_err: ETIMEDOUT
for the application, nothing on the wire) and only answers the peer's next
segment with a bare `R` (retransmission-timeout). An application that gives
up on its own timer and closes abortively (linger-abort, unread-data-close)
sends its `R.` whenever that timer fires, not on the retransmission timer's
beat: a RST well before the next retransmission was due stays ambiguous
between them.

References: RFC 1122 §4.2.3.5 (R2: close the connection after retransmitting
too long); RFC 9293 §3.8.3; Windows TcpMaxDataRetransmissions; Linux
net/ipv4/tcp_timer.c tcp_write_timeout (silent, except an orphan out of
resources: tcp_out_of_resources); synthetic fixture
tests/fixtures/explain/retransmission-abort_server.pcap (tests/fixtures/make_explain_fixtures.py).
"""
from __future__ import annotations

from itertools import pairwise

from ...capture import Packet
from ...connections import seq_after
from ..context import Context
from ..facts import Facts, gaps, seq_end
from ..verdict import Finding, secs

ID = "retransmission-abort"
FAMILIES = frozenset({"abort"})
TELL = ("the sender's operating system (Windows resets after TcpMaxDataRetransmissions; Linux gives up "
        "silently); whether the peer or the path vanished while the segment was retransmitted")
ZEEK = "RSTO or RSTR, history with t (the retransmissions) then the sender's R"

MIN_TAIL = 3         # retransmissions of the segment after the sender's last new data
DUE = 0.75           # the RST came at least this share of the last gap after the last retransmission


def _tail(f: Facts) -> list[Packet]:
    """The transmissions of X's unacknowledged segment after X last sent anything new."""
    train = f.retransmissions
    if not train:
        return []
    last_new = None
    high: int | None = None
    for p in f.xs:
        end = seq_end(p)
        if high is None or seq_after(end, high):
            high = end
            last_new = p.time
    return [p for p in train if last_new is None or p.time > last_new]


def check(f: Facts, ctx: Context) -> Finding | None:
    tail = _tail(f)
    if len(tail) < MIN_TAIL:
        return None
    x, y = f.x_text, f.y_text
    between = gaps(tail)
    wait = f.rst.time - tail[-1].time
    due = wait >= DUE * between[-1]
    gap_text = ", ".join(secs(g) for g in between)
    growing = all(g2 >= g1 * 0.8 for g1, g2 in pairwise(between))
    span = secs(tail[-1].time - tail[0].time)
    why = (f"{x} retransmitted the same segment {len(tail)} times over {span} ({gap_text} apart"
           f"{', growing' if growing else ''}), never acknowledged, then reset {secs(wait)} after the last one"
           + (", when the next retransmission was due" if due else
              f", before the next was due (the last gap was {secs(between[-1])})"))
    found = Finding(ID, why, TELL, decided=due, rank=0)
    if f.retransmissions[0] is not tail[0]:
        found.add(f.retransmissions[0], f"{x} sends the segment; {y} never acknowledges it")
    for p in tail[:-1]:
        found.add(p, "retransmitted, unanswered")
    found.add(tail[-1], f"retransmission {len(tail)}, still unanswered")
    found.add(f.rst, f"{x} gives up: RST with ACK on the retransmission timer's beat" if due else
              f"{x} resets before its timer would have fired again")
    if due:
        found.sentence = (f"{x} retransmitted one segment {len(tail)} times over {span} without an "
                          f"acknowledgment from {y} (it, or the path to it, had gone), and when its "
                          "retransmission timer fired once more it gave up and reset the connection: what "
                          "Windows does after TcpMaxDataRetransmissions. (Linux gives up silently and only "
                          "resets the peer's next segment.)")
    return found
