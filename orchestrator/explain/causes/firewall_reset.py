"""firewall-reset: a firewall or router on the path forges the RST in a host's name.

Wire signature: the same `R.` a refusing kernel sends (iptables REJECT
--reject-with tcp-reset builds it like tcp_v4_send_reset: seq 0, ack = ISN+1),
or a bare `R` with seq = the segment's ack on an established connection.

Apart from its neighbours (closed-port, peer-restart): only where the RST was
made tells. A router capture shows the RST leaving the capture host while it
forwards the flow; a single capture elsewhere shows a TTL or an IP ID that
does not fit the claimed sender's other packets (see origin.py).

References: net/ipv4/netfilter/nf_reject_ipv4.c nf_send_reset (ID 0, DF, the
router's own TTL); Weaver, Sommer, Paxson, "Detecting Forged TCP Reset
Packets", NDSS 2009; SCENARIOS.md firewall-reset.
"""
from __future__ import annotations

from ..context import Context
from ..facts import Facts
from ..verdict import Finding, secs

ID = "firewall-reset"
FAMILIES = frozenset({"refused", "late-synack", "no-socket", "abort", "lonely", "other"})
TELL = ("a capture on the host the RST claims to come from, with no trace of the segment (the "
        "firewall stopped it), or a RST whose TTL differs from that host's other packets (a "
        "middlebox is a different number of hops away); the firewall's REJECT rule counters")
ZEEK = "REJ with history Sr (a refused SYN), or RSTR with history ShADr (an established flow)"
AMBIGUOUS_AS = {"no-socket": (60, "a firewall on the way forged the RST")}


def check(f: Facts, ctx: Context) -> Finding | None:
    if f.forged:
        return _forged(f)
    if f.by_endpoint:
        return None                # the endpoint itself sent it
    if f.family == "refused":
        return Finding(ID, "iptables REJECT --reject-with tcp-reset (and most firewalls) forges the "
                           "identical RST in the server's name", TELL, rank=9)
    if f.family == "no-socket":
        idle = _idle_before(f)
        hint = (f"; the connection was idle for {idle:.2f} s before, long enough for a NAT or "
                "load-balancer idle timeout" if idle > 60 else "")
        return Finding(ID, "a firewall rejecting an established flow (iptables REJECT "
                           "--reject-with tcp-reset) forges exactly this RST" + hint, TELL, rank=9)
    return None


def _idle_before(f: Facts) -> float:
    seg = f.answered
    if seg is None:
        return 0.0
    earlier = [p.time for p in f.before if p.time < seg.time]
    return seg.time - earlier[-1] if earlier else 0.0


def _forged(f: Facts) -> Finding:
    why = "; ".join(f.forged)
    found = Finding(ID, why, TELL, decided=True)
    x = f.x_text
    if f.family == "refused":
        syn = next(p for p in f.ys if p.is_syn)
        found.add(syn, "the SYN; it was not forwarded to its destination" if f.origin == "here"
                  else "the SYN")
        what = f"refused the connection to {x} in its name"
    else:
        target = f.answered or (f.ys[-1] if f.ys else None)
        reply = next((p for p in reversed(f.xs) if target is not None and p.index > target.index), None)
        if reply is None:
            found.add(target, "the segment the firewall stopped")
        else:             # its claimed sender answered it: nothing was stopped, the box reset the flow itself
            found.add(target, f"the last segment from {f.y_text}")
            found.add(reply, f"{x} answered it, so it got through; nothing more came from {x} in the "
                             f"{secs(f.rst.time - reply.time)} before the RST")
        what = f"reset the connection with {x} in its name"
    found.add(f.rst, "the forged RST: " + f.forged[0])
    found.sentence = (f"A firewall or router between the hosts {what}: {why}. The application sees "
                      "ECONNREFUSED or ECONNRESET as if the peer had sent it.")
    return found
