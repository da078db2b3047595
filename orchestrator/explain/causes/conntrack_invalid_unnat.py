"""conntrack-invalid-unnat: a segment conntrack called INVALID skipped reverse NAT, and the client reset it.

A service address is NATed to a backend (kube-proxy, a load balancer, any
DNAT). When conntrack on the NAT box finds one of the backend's segments out
of window (tcp_in_window: "SEQ is over upper bound"), it marks it INVALID and
detaches it from its connection, so the NAT hooks have nothing to reverse: it
reaches the client from the backend's real address and port. The client has
no socket for that four-tuple and answers with a bare RST (tcp_v4_send_reset,
NO_SOCKET) whose seq is the segment's ack: exactly the backend's rcv_nxt, so
the backend's connection is reset. The client still believes in its own; its
next segment, NATed to the backend, finds no socket there, and the backend's
RST comes back through NAT.

Wire signature, at each capture point:
* at the client: a segment from an address the client's port never connected
  to, whose ack continues the client's connection from the same port with
  another address (the service's), answered by a bare `R`;
* at the backend (or the NAT box): the backend's segment lies far outside its
  own sequence space (beyond any window the client offered), and the client
  answers it with a bare `R`, where a TCP that holds the connection answers an
  out-of-window segment with an ACK (RFC 9293 §3.10.7.4);
* the client's later segment on the service address answered by a bare `R`,
  after the client itself had reset the stray from the same port.

Apart from its neighbours: peer-restart's RST answers an in-window segment
and nothing ties it to another four-tuple; here the segment answered is out
of window or comes from the un-translated address. With nf_conntrack_tcp_be_liberal=1
(conntrack-invalid-liberal) the same segment keeps its NAT and draws an ACK.

References: net/netfilter/nf_conntrack_proto_tcp.c tcp_in_window,
nf_tcp_log_invalid; kubernetes/kubernetes#74839 (the reset), #74840 (drop
INVALID), #120412 (be_liberal); the Kubernetes blog "kube-proxy Subtleties";
scenario conntrack-invalid-unnat.
"""
from __future__ import annotations

from ...capture import Packet
from ..context import Context
from ..facts import Addr, Connection, Facts, seq_end, window_offset
from ..result import endpoint
from ..verdict import Finding

ID = "conntrack-invalid-unnat"
FAMILIES = frozenset({"no-socket"})
TELL = ("`conntrack -S` on the NAT box counting invalid packets; a capture on the NAT box showing the segment "
        "leave with the backend's own address; `iptables -A FORWARD -m conntrack --ctstate INVALID -j DROP` "
        "or nf_conntrack_tcp_be_liberal=1 make the resets stop")
ZEEK = ("RSTR on the client's connection (history ShADr), and a stray responder-only flow with history Dr; at the "
        "backend REJ, history ShAdtRDr (its out-of-window segment is a retransmission to Zeek and adds no size)")

FIX = "Drop INVALID packets at the NAT box, or set nf_conntrack_tcp_be_liberal=1."


def carried(seg: Packet, conn: Connection, sender: Addr) -> Packet | None:
    """The last packet of `sender` on `conn` before `seg` whose next sequence number `seg`
    acknowledges: `seg` carries that connection's numbers."""
    last = None
    for p in conn.raw:
        if p.time > seg.time:
            break
        if (p.src, p.sport) == sender and not p.is_rst and seq_end(p) == seg.ack:
            last = p
    return last


def twin(f: Facts, ctx: Context, seg: Packet, local: Addr, remote: Addr) -> tuple[Connection, Packet] | None:
    """The connection `local` (same address and port) opened with another remote than `remote` whose
    numbers `seg` (sent to `local`) carries, and the packet of `local` it continues."""
    for c in ctx.opened_by(local):
        first = c.raw[0]
        if c is f.conn or (first.dst, first.dport) == remote:
            continue
        p = carried(seg, c, local)
        if p is not None:
            return c, p
    return None


def _decided(why: str, evidence: list[tuple[Packet | None, str]], sentence: str) -> Finding:
    found = Finding(ID, why, TELL, decided=True, sentence=f"{sentence} {FIX}")
    for p, what in evidence:
        found.add(p, what)
    return found


def _text(offset: int) -> str:
    size = abs(offset)
    amount = f"2^{size.bit_length() - 1}" if size & (size - 1) == 0 else f"{size}"
    return f"{amount} bytes {'beyond' if offset > 0 else 'behind'}"


def check(f: Facts, ctx: Context) -> Finding | None:
    seg = f.answered
    if seg is None:
        return None
    if f.x_role is None:
        found = _stray_arrived(f, ctx, seg)
        if found is not None:
            return found
    jump = window_offset(seg, f.ys, f.xs, f.conn.elided)
    if jump is not None and f.handshake:
        return _stray_sent(f, seg, jump)
    return _aftermath(f, ctx)


def _stray_arrived(f: Facts, ctx: Context, seg: Packet) -> Finding | None:
    """At the client: the stray comes from the backend's real address."""
    found_twin = twin(f, ctx, seg, f.x, f.y)
    if found_twin is None:
        return None
    conn, mine = found_twin
    x, y = f.x_text, f.y_text
    service = endpoint(mine.dst, mine.dport)
    before = [p for p in conn.raw if p.time < seg.time]
    jump = window_offset(seg, [p for p in before if (p.src, p.sport) != f.x],
                         [p for p in before if (p.src, p.sport) == f.x])
    where = f", {_text(jump)} that connection's sequence space (out of window)" if jump is not None else ""
    return _decided(
        f"{x} has no connection with {y}, yet {y}'s segment acknowledges exactly {x}'s next byte on its "
        f"connection with {service}{where}: it is that connection's segment with its source not translated back",
        [(mine, f"{x}'s last segment to {service} (the service address): the numbers the stray carries"),
         (seg, f"from {y}, not {service}: the backend's own address, ack = {x}'s next byte to {service}"),
         (f.rst, f"{x} has no socket for {y}: a bare RST, seq = that ack, which the backend accepts")],
        f"A NAT between {x} and {service} (its backend is {y}) let one of the backend's segments through "
        f"without reverse NAT{where}: conntrack had marked it INVALID. {x}'s TCP has no connection with {y} "
        f"and answered with a RST that resets the backend's side; {x}'s own connection to {service} is dead "
        "from then on (its next segment is reset).")


def _stray_sent(f: Facts, seg: Packet, jump: int) -> Finding:
    """At the backend or the NAT box: the segment is out of window, and the answer is a RST, not an ACK."""
    x, y = f.x_text, f.y_text
    last = next((p for p in reversed(f.ys) if p is not seg and p.time <= seg.time), None)
    return _decided(
        f"{y}'s segment lies {_text(jump)} its own sequence space, outside any window {x} offered, and {x} "
        "answered it with a bare RST (no socket), where a TCP holding the connection answers an out-of-window "
        "segment with an ACK",
        [(last, f"{y}'s previous segment: its sequence space"),
         (seg, f"{_text(jump)} it: out of window for conntrack on the path (INVALID)"),
         (f.rst, f"{x} answers as for a connection it does not have: the segment reached it un-NATed")],
        f"{y}'s segment was out of window, so conntrack on a NAT box between marked it INVALID and forwarded "
        f"it without reverse NAT: it reached {f.x[0]} from {y}'s real address, which {f.x[0]} has no "
        f"connection with, and its bare RST reset {y}'s connection (ECONNRESET there).")


def _aftermath(f: Facts, ctx: Context) -> Finding | None:
    """The client's later segment on the service address, after the client itself had reset, from the
    same port, a stray carrying this connection's numbers (which reset the backend's side)."""
    if f.x_role != "server":
        return None                    # Y, the client, opened this connection to the service address
    for d in ctx.bare_resets.get(f.y, ()):
        rst, stray = d.rst, d.answered
        backend = d.y
        if d.number == f.conn.number or rst.time >= f.rst.time or backend == f.x or stray is None:
            continue
        if carried(stray, f.conn, f.y) is None:
            continue
        x, y, other = f.x_text, f.y_text, endpoint(*backend)
        return _decided(
            f"{y} had reset, from the same port, a segment that came from {other} carrying this connection's "
            f"numbers (un-NATed): that RST reset the backend's side, so {y}'s next segment found no connection "
            "there",
            [(stray, f"this connection's segment, arriving from {other} (not translated back)"),
             (rst, f"{y} has no socket for {other}: its RST resets the backend's side"),
             (f.answered, f"{y}'s next segment to {x}, NATed to the backend"),
             (f.rst, f"the backend has no socket any more: a bare RST, through NAT as {x}")],
            f"{y}'s connection to {x} (a NATed service address; its backend is {other}) was already dead: a "
            f"segment of it had skipped reverse NAT (conntrack marked it INVALID) and reached {f.y[0]} from "
            f"{other}, and {f.y[0]}'s RST to it reset the backend's side. {y}'s next segment was answered "
            "with a RST (ECONNRESET).")
    return None
