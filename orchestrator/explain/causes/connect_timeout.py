"""connect-timeout: the client gave up connecting before the SYN/ACK came.

Wire signature: SYN, a late SYN/ACK, then a bare `R` (no ACK, seq = ISN+1)
from the client at once: its SYN-SENT socket was closed, so the SYN/ACK found
no socket.

Apart from its neighbours: a SYN/ACK that acknowledges a sequence number the
client never sent (a stale answer) is rejected the same way; that is not a
timeout and comes out `unknown`.

References: net/ipv4/tcp_ipv4.c tcp_v4_send_reset (seq taken from the
segment's ack); SCENARIOS.md connect-timeout, sndtimeo-connect.
"""
from __future__ import annotations

from ...capture import Packet
from ...connections import SEQ_MOD
from ..context import Context
from ..facts import Facts
from ..result import UNKNOWN
from ..verdict import Finding, secs

ID = "connect-timeout"
FAMILIES = frozenset({"late-synack"})
TELL = "the client's connect timeout (shorter than the SYN/ACK's delay)"
SIBLING_WINDOW = 0.01     # s: connections opened this close together are one application's parallel attempts
ZEEK = "RSTO, history ShR"


def _sibling(f: Facts, ctx: Context, syn_time: float) -> tuple[Facts, Packet] | None:
    """Another connection from the client to the same server, opened within SIBLING_WINDOW of this SYN,
    whose SYN/ACK came before this one's and that the client then reset itself (so it was noted)."""
    for g in ctx.aborts_near(f.x[0], f.rst.time, SIBLING_WINDOW):
        if g.conn is f.conn or g.y[0] != f.y[0] or g.x_role != "client":
            continue
        synack = next((p for p in g.ys if p.is_synack), None)
        if synack is not None and abs(g.conn.pk[0].time - syn_time) <= SIBLING_WINDOW and synack.time <= f.rst.time:
            return g, synack
    return None


def check(f: Facts, ctx: Context) -> Finding | None:
    syns = [p for p in f.xs if p.is_syn]
    synack = f.answered
    if synack is None or not syns:
        return None
    x = f.x_text
    isn = syns[0].seq
    evidence = [(syns[0], "the client's SYN" + (f" (sent {len(syns)} times)" if len(syns) > 1 else ""))]
    if len(syns) > 1:
        evidence.append((syns[-1], "its last retransmission"))
    delay = synack.time - syns[0].time
    evidence.append((synack, f"the SYN/ACK, {secs(delay)} after the SYN"))
    if synack.ack != (isn + 1) & SEQ_MOD:
        found = Finding(UNKNOWN, "", "", decided=True, evidence=list(evidence))
        found.add(f.rst, "RST without ACK taking its seq from the SYN/ACK's ack")
        found.sentence = (f"The SYN/ACK acknowledged a sequence number {x} never sent (a stale answer to "
                          "an earlier connection on the same ports?), so the client's kernel rejected it "
                          "with RST.")
        return found
    answer = f.rst.time - synack.time
    why = (f"the SYN/ACK arrived {secs(delay)} after the SYN and the client answered it with a bare "
           "RST: the connecting socket had been closed")
    found = Finding(ID, why, TELL, decided=True, evidence=list(evidence))
    found.add(f.rst, f"RST without ACK, seq = ISN+1, {secs(answer)} after the SYN/ACK: no socket "
                     "was waiting for it any more")
    found.sentence = (f"The client {x} gave up connecting before the server answered (its connect "
                      f"timeout ran out and it closed the socket); the SYN/ACK arrived {secs(delay)} "
                      "after the SYN, found no socket, and the client's kernel answered it with RST.")
    sibling = _sibling(f, ctx, syns[0].time)
    if sibling is not None:
        other, its_synack = sibling
        found.notes.append(f"{other.x_text}, another connection of {f.x[0]} to {f.y[0]} opened at the same "
                           f"time, got its SYN/ACK {secs(its_synack.time - other.conn.pk[0].time)} after "
                           "its SYN, before this SYN/ACK came: the application may have given this attempt "
                           "up because the other succeeded (parallel connects), not on a timer")
    if answer > 0.2:
        found.notes.append(f"the RST came {secs(answer)} after the SYN/ACK, not at once: the socket may "
                           "have been closed only then")
    return found
