"""peer-restart: the host forgot the connection (it or its service restarted).

Wire signature: on an established connection, a segment answered by a bare
`R` (no ACK, seq = the segment's ack) from a host that never sent FIN: the
answer to a segment for a connection the host does not know.

Apart from its neighbours: the same RST comes from a host that gave up after
retransmissions the capture did not see (retransmission-timeout) and from a
firewall (firewall-reset). Proof of a restart: a new connection to the same
port refused in between, the host's interface recreated, or the capture
taken on the host itself (where its retransmissions would show). That the
host itself sent the RST (its TTL) rules out a firewall, not a timeout.

References: net/ipv4/tcp_ipv4.c tcp_v4_rcv (no socket: tcp_v4_send_reset);
RFC 9293 §3.10.7.1; SCENARIOS.md peer-restart.
"""
from __future__ import annotations

from ..context import Context
from ..facts import Facts
from ..verdict import Finding
from .fin_wait2_timeout import late_data_gap

ID = "peer-restart"
FAMILIES = frozenset({"no-socket"})
TELL = ("the host's or service's restart time (uptime, logs), or a capture on that host showing the "
        "segment arriving and the RST leaving it")
ZEEK = "RSTR, history ShADadr (the responder's RST without a FIN)"
AMBIGUOUS_AS = {"no-socket": (40, "it restarted")}


def check(f: Facts, ctx: Context) -> Finding | None:
    if late_data_gap(f) is not None:
        return None              # X had closed (FIN, acknowledged): data-after-close or fin-wait2-timeout
    x, y = f.x_text, f.y_text
    seg = f.answered
    last_x = f.xs[-1] if f.xs else None
    proof: list[str] = []
    if f.origin == "here" and f.by_endpoint:
        proof.append(f.by_endpoint)      # on the host itself: no unseen retransmissions
    lo = last_x.time if last_x is not None else f.conn.pk[0].time
    refusal = ctx.refusal_between(f.x, lo, f.rst.time)
    if refusal is not None:
        proof.append(f"a new connection to {x} was refused in between, so the service was down")
    if f.origin == "here":
        old = [p.ifindex for p in f.xs if p.ifindex is not None and p.direction == "out"]
        if old and f.rst.ifindex is not None and f.rst.ifindex != old[-1]:
            proof.append(f"the host's interface changed (index {old[-1]} to {f.rst.ifindex}): its "
                         "network stack was recreated")
    if proof:
        found = Finding(ID, "; ".join(proof), TELL, decided=True)
        found.sentence = (f"{x} had forgotten the connection (the host or its service restarted): "
                          f"{y}'s segment was answered with a bare RST, the answer to a segment for an "
                          "unknown connection, and no FIN had come from it.")
    else:
        fin = ("and it had sent no FIN" if f.x_fin is None
               else "though it had closed with FIN before: a host that lost every socket answers the same")
        found = Finding(ID, f"{x} answered {y}'s segment as if it had never heard of the connection, {fin}",
                        TELL, rank=0)
        found.sentence = (f"{x} answered {y}'s segment with a bare RST, as a host does for a connection "
                          "it does not know.")
    found.add(last_x, f"the last packet from {x} before the reset")
    if seg is not None:
        found.add(seg, f"{y}'s segment")
        found.add(f.rst, "RST without ACK, seq = that segment's ack: the answer to a segment for "
                         "a connection the host does not know")
    else:
        found.add(f.rst, "RST without ACK")
        found.notes.append("the RST's seq matches no segment's ack in the capture")
    if f.x_fin is not None:
        found.notes.append(f"{x} had sent FIN before: its closed socket may have been gone")
    found.add(refusal, f"meanwhile a new connection to {x} is refused: nothing listened there")
    return found
