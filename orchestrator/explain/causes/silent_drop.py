"""silent-drop: the SYN was never answered, neither by SYN/ACK nor by RST.

Wire signature: a connection of SYNs only, retransmitted with RTO backoff
(1 s, 2 s, 4 s... on Linux; 3 s, 6 s on Windows).

Apart from its neighbours: a RST or a SYN/ACK would make it closed-port,
firewall-reset or connect-timeout; an ICMP unreachable is not examined.
A lone SYN at the very end of a capture is not called dropped (its answer
may just be missing).

References: net/ipv4/tcp_timer.c tcp_retransmit_timer (SYN_SENT);
iptables DROP; SCENARIOS.md silent-drop.
"""
from __future__ import annotations

from ..context import Context
from ..facts import Facts
from ..result import SILENT_DROP
from ..verdict import Finding, secs

ID = SILENT_DROP
FAMILIES = frozenset({"unanswered"})
TELL = "a capture on the destination: if the SYN arrives there, its firewall drops it"
ZEEK = "S0, history S"
SYN_GRACE = 1.0           # s: a lone SYN this long before the capture's end counts as unanswered


def check(f: Facts, ctx: Context) -> Finding | None:
    c = f.conn
    syns = c.pk
    if ctx.one_sided:
        return None       # no packet of any other direction: the answers were not recorded at all
    if len(syns) < 2 and ctx.end_time - syns[-1].time < SYN_GRACE:
        return None
    first, last = syns[0], syns[-1]
    found = Finding(ID, f"{len(syns)} SYN(s), no answer at all", TELL, decided=True)
    found.add(first, "the SYN")
    for i, p in enumerate(syns[1:], 1):
        found.add(p, f"retransmission {i}, {secs(p.time - first.time)} after the first SYN "
                     f"({secs(p.time - syns[i - 1].time)} after the one before)")
    span = last.time - first.time
    where = "something on the path or the host itself dropped it"
    if first.direction == "in":
        if any(p.index in c.forwarded for p in syns):
            where = "this capture host forwarded it; nothing came back through it"
        else:
            where = ("the SYN reached this capture host and was not answered: its firewall dropped "
                     "it (or, on a router, it was not forwarded)")
    errors = ctx.icmp_about(c)
    if errors:
        err = errors[0]
        where = (f"{err.sender} answered it with ICMP {err.kind} {secs(err.time - first.time)} after "
                 "the first SYN")
        found.why += f"; ICMP {err.kind} from {err.sender}"
    n = len(syns)
    found.sentence = (f"The SYN to {f.x_text} was sent {n} time{'s' if n > 1 else ''}"
                      f"{f' over {secs(span)}' if n > 1 else ''} and never answered, neither by "
                      f"SYN/ACK nor by RST: {where}; " + (
                          "Linux fails connect() at once on an ICMP unreachable in SYN_SENT (tcp_v4_err)."
                          if errors else "connect() hangs until the client's own timeout."))
    return found
