"""closed-port: nothing listens on the port; the kernel refuses the SYN.

Wire signature: the SYN answered by `R.` with seq 0 and ack = ISN+1, and no
SYN/ACK before it (tcp_v4_send_reset for a segment without ACK).

Apart from its neighbours: a firewall forging the refusal (firewall-reset)
sends the identical RST; only evidence that the server itself sent it decides
(a capture on the server, or a TTL matching the server's other packets).

References: net/ipv4/tcp_ipv4.c tcp_v4_send_reset; RFC 9293 §3.10.7.1
(CLOSED state); SCENARIOS.md closed-port.
"""
from __future__ import annotations

from ..context import Context
from ..facts import Facts
from ..verdict import Finding

ID = "closed-port"
FAMILIES = frozenset({"refused"})
TELL = ("a capture on the server showing the SYN arriving and the RST leaving it, or a RST whose TTL "
        "matches the server's other packets; `ss -ltn` on the server shows no listener on the port")
ZEEK = "REJ, history Sr"


def check(f: Facts, ctx: Context) -> Finding | None:
    x = f.x_text
    syns = [p for p in f.ys if p.is_syn]
    if f.by_endpoint:
        found = Finding(ID, f.by_endpoint, TELL, decided=True)
        found.sentence = (f"Nothing was listening on {x}: its kernel answered the SYN with RST itself "
                          f"({f.by_endpoint}), so connect() failed at once with ECONNREFUSED.")
    else:
        found = Finding(ID, f"the usual reason: no socket listens on {x}, and a refusing kernel sends "
                            "exactly this RST (seq 0, ack = ISN+1)", TELL, rank=0)
    found.add(syns[0], "the SYN" + (f" (sent {len(syns)} times)" if len(syns) > 1 else ""))
    if len(syns) > 1:
        found.add(syns[-1], "the last SYN")
    found.add(f.rst, "RST with ACK acknowledging the SYN (ack = ISN+1), and no SYN/ACK before it: "
                     f"no socket accepted the connection on {x}")
    return found
