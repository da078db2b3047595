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

from ...connections import SEQ_MOD
from ..context import Context
from ..facts import Facts
from ..result import UNKNOWN
from ..verdict import Finding, secs

ID = "connect-timeout"
FAMILIES = frozenset({"late-synack"})
TELL = "the client's connect timeout (shorter than the SYN/ACK's delay)"
ZEEK = "RSTO, history ShR"


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
    if answer > 0.2:
        found.notes.append(f"the RST came {secs(answer)} after the SYN/ACK, not at once: the socket may "
                           "have been closed only then")
    return found
