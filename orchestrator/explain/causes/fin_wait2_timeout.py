"""fin-wait2-timeout: the closer's FIN_WAIT2 state expired before the peer's late data came.

Wire signature: X sends FIN, Y acknowledges it and sends no FIN (its
application never closes: CLOSE_WAIT), stays silent, and writes again
seconds later (or sends an ACK or a keepalive probe, which a live FIN_WAIT2
socket would acknowledge, never reset); X, whose orphaned FIN_WAIT2 socket
has expired after tcp_fin_timeout, answers with a bare `R` (seq = the
segment's ack).

Apart from its neighbours: data-after-close is the same RST while X's closed
socket still exists; the wire differs only in time, and time on a loaded host
proves nothing. Data less than a second after the FIN cannot have outlived a
FIN_WAIT2 timer (tcp_fin_timeout is at least 1 s), so that stays
data-after-close; later data fits both, data-after-close listed first below
Linux's default 60 s. The kernel's reason decides (TCP_TIMEWAIT_SOCKET while
the socket lives, NO_SOCKET after it expired).

References: net/ipv4/tcp.c __tcp_close (tcp_fin_time, inet_csk_reset_keepalive_timer),
net/ipv4/tcp_timer.c tcp_keepalive_timer (TCP_FIN_WAIT2); moby/moby#29655;
SCENARIOS.md fin-wait2-timeout.
"""
from __future__ import annotations

from ..context import Context
from ..facts import Facts, seq_end
from ..verdict import Finding, secs

ID = "fin-wait2-timeout"
FAMILIES = frozenset({"no-socket"})
TELL = ("the closer's tcp_fin_timeout against the silence before the late data; on the peer, "
        "`ss -tan state close-wait` shows the connection its application never closed")
ZEEK = "RSTO, history ShAFadr (the originator's FIN, silence, the responder's data, the RST)"
AMBIGUOUS_AS = {"no-socket": (30, "its closed socket's FIN_WAIT2 state had expired")}
MIN_FIN_TIMEOUT = 1.0     # s: the smallest tcp_fin_timeout
DEFAULT_FIN_TIMEOUT = 60.0  # s: Linux's default; only a lowered one expires sooner


def late_data_gap(f: Facts) -> float | None:
    """Seconds Y stayed silent between acknowledging X's FIN and its next data, or None."""
    fin = f.x_fin
    if fin is None or any(p.is_fin for p in f.ys):
        return None
    after = [p for p in f.ys if p.time > fin.time]
    data = next((p for p in after if p.length), None)
    if data is None:
        return None
    quiet = [p.time for p in after if p.time < data.time]
    return data.time - (quiet[-1] if quiet else fin.time)


def late_segment_gap(f: Facts) -> float | None:
    """Seconds Y stayed silent between acknowledging X's FIN and the segment without data that the RST
    answers (an ACK or a keepalive probe: a live FIN_WAIT2 socket would never reset it), or None."""
    fin, seg = f.x_fin, f.answered
    if fin is None or seg is None or seg.length or seg.is_fin or any(p.is_fin for p in f.ys):
        return None
    acked = [p.time for p in f.ys if fin.time < p.time < seg.time and p.has_ack and p.ack == seq_end(fin)]
    return seg.time - acked[-1] if acked else None


def check(f: Facts, ctx: Context) -> Finding | None:
    gap = late_data_gap(f)
    if gap is None:
        gap = late_segment_gap(f)
    if gap is None or gap < MIN_FIN_TIMEOUT:
        return None
    x, y = f.x_text, f.y_text
    found = Finding(ID, f"{y} acknowledged {x}'s FIN, never sent its own, and wrote again {secs(gap)} "
                        f"later: long enough for a FIN_WAIT2 state with a lowered tcp_fin_timeout to "
                        "expire", TELL, rank=0 if gap >= DEFAULT_FIN_TIMEOUT else 2)
    found.sentence = (f"{x} closed the connection and {y} never did (CLOSE_WAIT); its late data came "
                      f"{secs(gap)} after it acknowledged the FIN, when {x}'s FIN_WAIT2 state may have "
                      "expired, and was answered with RST.")
    found.add(f.x_fin, f"{x} closes: FIN")
    found.add(f.answered, f"{y}'s late " + ("data" if f.answered is not None and f.answered.length else "segment"))
    found.add(f.rst, "RST without ACK: no socket (or a closed one) for the connection")
    return found
