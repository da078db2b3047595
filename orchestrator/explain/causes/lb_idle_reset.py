"""lb-idle-reset: a load balancer or proxy between the hosts resets an idle connection on both sides.

Wire signature: after a quiet spell with nothing outstanding (every byte each
way acknowledged, no packet at all), `R.` with seq = snd_nxt and ack =
rcv_nxt from the side that holds the connection for the balancer. A proxy
holds two connections per flow (client to proxy, proxy to server) and closes
both when its idle timer fires (SO_LINGER {1, 0} on both, as Azure's "TCP
reset on idle" does): the same host resets a connection on which it is the
server and one on which it is the client, in the same instant, each after the
same idle time.

Apart from its neighbours: an application that closes an idle connection
abortively (linger-abort) sends the same RST on one connection. Only the pair
decides: both legs reset together, seen where the proxy's traffic is captured.
At one end alone the idle spell makes this a candidate beside the abortive
closes, unless the same host reset two or more other connections in the same
instant (BATCH_WINDOW) that had not been idle as long: no idle timer fires
on connections of different idle spells at once. A balancer that forgets idle flows silently (or a NAT that forgets
them) sends nothing at the timeout: the next segment is dropped or refused
(retransmission-timeout, firewall-reset).

References: net/ipv4/tcp.c __tcp_close (SO_LINGER {1, 0}: tcp_disconnect,
SK_RST_REASON_TCP_STATE); Azure Load Balancer "TCP reset on idle"; AWS NLB
and GCP idle timeouts (350 s, 10 min); scenario lb-idle-reset.
"""
from __future__ import annotations

from ...connections import seq_after
from ..context import Context
from ..facts import Facts, seq_end
from ..families import abort_batch
from ..verdict import Finding, secs

ID = "lb-idle-reset"
FAMILIES = frozenset({"abort"})
TELL = ("whether a load balancer or proxy sits between the hosts and its idle timeout equals the quiet "
        "spell; a capture at the proxy shows it resetting the other leg at the same instant")
ZEEK = "RSTR on the client's leg and RSTO on the server's, history ShADadR on each, no F"
AMBIGUOUS_AS = {"abort": (10, "a load balancer's or proxy's idle timeout closed it")}

IDLE_MIN = 1.0            # s: a quiet spell at least this long before the RST is an idle timer's
PAIR_WINDOW = 1.0         # s: the two legs' RSTs of one idle timeout are this close together (two close()
                          # calls back to back; a loaded machine's scheduler has put 50 ms to 1 s between them)
PAIR_IDLE_SLACK = 1.0     # s: and their quiet spells this close in length


def idle_before(f: Facts) -> float | None:
    """How long nothing at all was sent before X's RST, when nothing was outstanding then
    (X's bytes acknowledged by Y, Y's acknowledged by the RST); None when not idle."""
    if not f.before or not f.rst.has_ack:
        return None
    idle = f.rst.time - f.before[-1].time
    if idle < IDLE_MIN or f.retransmissions or f.probes:
        return None
    y_acks = [p.ack for p in f.ys if p.has_ack]
    if not y_acks or y_acks[-1] != f.rst.seq:
        return None            # X had bytes in flight (the RST's seq is its snd_nxt): not idle
    if any(seq_after(seq_end(p), f.rst.ack) for p in f.ys):
        return None            # the RST leaves some of Y's bytes unacknowledged
    return idle


def _other_leg(f: Facts, ctx: Context, idle: float) -> Facts | None:
    """X's RST on another connection, with another peer and the other role, in the same instant
    after the same quiet spell: the other leg of a proxied flow."""
    for g in ctx.aborts_near(f.x[0], f.rst.time, PAIR_WINDOW):
        if g is f or g.y[0] == f.y[0] or g.x_role is None or g.x_role == f.x_role:
            continue
        other = idle_before(g)
        if other is not None and abs(other - idle) <= PAIR_IDLE_SLACK:
            return g
    return None


def check(f: Facts, ctx: Context) -> Finding | None:
    idle = idle_before(f)
    if idle is None:
        return None
    batch = abort_batch(f, ctx)
    if len(batch) >= 2 and any((other := idle_before(g)) is None or abs(other - idle) > PAIR_IDLE_SLACK
                               for g in batch):
        return None     # reset at once with connections not idle as long: one event, no idle timer
    x, y = f.x_text, f.y_text
    leg = _other_leg(f, ctx, idle) if f.x_role is not None else None
    if leg is None:
        found = Finding(ID, f"the connection had been idle for {secs(idle)} with nothing outstanding when "
                            f"{x} reset it: a load balancer's or proxy's idle timeout resets both legs "
                            "this way", TELL, rank=0)
    else:
        found = Finding(ID, f"{f.x[0]} reset its connection with {y} and, {secs(abs(leg.rst.time - f.rst.time))} "
                            f"apart, its connection with {leg.y_text}, each after {secs(idle)} idle with "
                            "nothing outstanding", TELL, decided=True)
        found.sentence = (f"{f.x[0]} is a proxy or load balancer holding both legs of this flow: when the "
                          f"flow had been idle for {secs(idle)}, its idle timeout closed both connections "
                          f"abortively, {y} on one side and {leg.y_text} on the other, and each peer sees "
                          "ECONNRESET on its next read. Keep connections busier than the balancer's idle "
                          "timeout (keepalive or an application ping), or the pool's idle timeout shorter.")
    found.add(f.before[-1], f"the last packet before {secs(idle)} of silence, nothing outstanding")
    found.add(f.rst, f"{x} resets: RST with ACK (seq = its next byte, ack = all it received), no FIN")
    if leg is not None:
        found.add(leg.before[-1], f"the other leg's last packet, with {leg.y_text}")
        found.add(leg.rst, f"the same instant: {leg.x_text} resets the other leg")
    return found
