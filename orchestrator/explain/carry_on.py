"""carry-on: a connection that went on after its first RST gets a verdict for its later reset too.

What it does: splits one connection's packets into parts, one per reset incident,
each classified on its own (facts, causes, evidence); a connection that did not
carry on past its first RST stays one part, whatever follows it.

Wire signature of a carry-on past a RST from X to Y: new sequence space (a SYN/ACK,
data, a FIN beyond any its sender sent before the RST) from one end, acknowledged
by a later segment of the other that is no RST, where
* the new bytes are X's: Y's ACK shows Y did not take the RST (it still holds the
  connection and accepts X's new bytes), and X's new bytes that X did not either;
* or the new bytes are Y's, sent after the RST reached Y (captured more than
  twice Y's round trip from the capture point after the RST, that round trip
  measured on the handshake), and X acknowledges them.
Y's bytes captured sooner may have left before the RST arrived (in flight), and
an ACK of them shows nothing of Y. A carry-on happens when the RST was forged
and arrived unacceptable (w17: ack = the SYN's seq, not ISN+1, in SYN_SENT), was
out of window or answered by a challenge ACK, or when a same-ISN SYN opened the
four-tuple again (a SYN with a new ISN is a new connection already:
`connections.ConnectionTracker`).
The next RST after the carry-on starts a new part, which begins at the carry-on
(the packet after the last RST before the new bytes); the roles and ISNs the
part does not show are the connection's, and so is its Zeek conn.log row.

Apart from its neighbours: RSTs that answer segments still in flight, a
firewall's later RSTs for a flow it saw closed, a flood of 1,333 RSTs and
nothing else (w25) show no carry-on, and stay notes of one verdict
(`verdict.answered_segments`, `origin.later_forged`). A flood the connection
survives, the same RST again and again (one sender, flags and TTL, as a blind
injector sends them), carried on past each time, is one incident too: a repeat
of the part's first RST joins it when the connection carried on past it as
well, and starts a new part only when it did not (the one that took).

References: RFC 9293 §3.10.7.3 (an unacceptable ACK in SYN-SENT: the RST is
dropped), §3.10.7.4 and RFC 5961 §3.2 (a RST out of window is dropped, one in
window but not exact draws a challenge ACK); issue 17 (w17).
"""
from __future__ import annotations

from ..capture import Packet
from ..connections import seq_after
from .facts import Addr, Connection, Elided, seq_end

__all__ = ["parts", "why_not_taken"]


def parts(conn: Connection) -> list[Connection]:
    """The connection cut into its reset incidents (itself alone when there is one)."""
    conn.prepare()
    if conn.resets < 2:
        return [conn]
    cuts = _cuts(conn)
    if not cuts:
        return [conn]
    out: list[Connection] = []
    start = 0
    earlier: Packet | None = None
    for at, ack, later in cuts:
        part = conn.part(start, at, earlier)
        part.carried_on = (ack, later)
        out.append(part)
        start, earlier = at, part.first_rst
    out.append(conn.part(start, len(conn.pk), earlier))
    return out


def why_not_taken(pk: list[Packet], at: int) -> str | None:
    """Why the RST at `pk[at]`, which the connection carried on past, did not take, where its numbers
    show it: its receiver was in SYN-SENT (its SYN sent, no SYN/ACK of the RST's sender before), where
    a RST counts only with an ACK of that SYN (RFC 9293 §3.10.7.3). None where the packets do not say."""
    rst = pk[at]
    syn: Packet | None = None
    for p in pk[:at]:
        if (p.src, p.sport) == (rst.dst, rst.dport) and p.is_first_syn:
            syn = p
        elif (p.src, p.sport) == (rst.src, rst.sport) and (p.is_synack or not p.is_rst):
            return None                # the RST's sender had answered: its receiver had left SYN-SENT
    if syn is None:
        return None
    expected = (syn.seq + 1) & 0xFFFFFFFF
    if not rst.has_ack:
        ack = "it acknowledges nothing (no ACK flag)"
    elif rst.ack == expected:
        return None                    # acceptable: it should have taken
    elif rst.ack == syn.seq:
        ack = "its ack is the SYN's own sequence number, not the next"
    else:
        ack = f"its ack is {(rst.ack - expected) & 0xFFFFFFFF} bytes past the SYN's next sequence number"
    return (f"{rst.dst}:{rst.dport} was in SYN-SENT, where a RST counts only if it acknowledges the SYN "
            f"(RFC 9293 §3.10.7.3), and {ack}: it dropped the RST, and its application saw nothing of it")


def _look(p: Packet) -> tuple[str, int, str, int | None]:
    """What a repeat of a RST shares with it: its sender, flags and TTL."""
    return p.src, p.sport, p.flags, p.ttl


def _cuts(conn: Connection) -> list[tuple[int, Packet, Packet]]:
    """Where new parts begin: (position, the ACK that showed the carry-on, the new part's first RST).
    One pass from the first RST on, with each end's highest sequence end so far."""
    pk, first = conn.pk, conn.rst_pos
    high: dict[Addr, int] = {}
    gaps = {int(gone.gaps[0][0]): gone for gone in conn.gone() if gone.gaps}   # a long one's middles let go
    for j in range(first):
        if gaps and j and pk[j - 1].index in gaps:
            _merge(high, gaps[pk[j - 1].index])
        _advance(high, pk[j])
    rtts = _round_trips(conn)
    cuts: list[tuple[int, Packet, Packet]] = []
    lead = rst = pk[first]             # the part's first RST; the RST the carry-on is measured from
    last_rst = first                   # position of the latest RST
    x, y, marks, settled = _ends(rst, high, rtts)
    new: list[int | None] = [None, None]                # X's, Y's first new sequence end since the latest RST
    carried: tuple[int, Packet] | None = None           # the carry-on: where a part would begin, the ACK
    pending: tuple[int, Packet, Packet] | None = None   # a repeat of `lead` not yet known to be carried past
    for j in range(first + 1, len(pk)):
        p = pk[j]
        if gaps and pk[j - 1].index in gaps:
            _merge(high, gaps[pk[j - 1].index])
        if p.is_rst:
            if carried is None:        # no carry-on yet: one more RST of this incident
                last_rst, new = j, [None, None]
                continue
            if _look(p) == _look(lead):
                pending = (carried[0], carried[1], p)     # the same RST again: joins if carried past too
            else:
                cuts.append((carried[0], carried[1], p))
                lead = p
            rst, last_rst, new, carried = p, j, [None, None], None
            x, y, marks, settled = _ends(rst, high, rtts)
            continue
        _advance(high, p)
        if carried is not None:
            continue
        side = 0 if (p.src, p.sport) == x else 1
        if new[side] is None and (p.length or p.is_syn or p.is_fin) and (side == 0 or p.time > settled):
            end = seq_end(p)
            mark = marks[side]
            if mark is None or seq_after(end, mark):
                new[side] = end
        theirs = new[1 - side]
        if theirs is not None and p.has_ack and not seq_after(theirs, p.ack) \
                and not seq_after(p.ack, high[y if side == 0 else x]):
            carried = (last_rst + 1, p)
            pending = None             # the repeat was carried past: the flood goes on, one incident
    if pending is not None:
        cuts.append(pending)           # the repeat that took starts its own part
    return cuts


def _ends(rst: Packet, high: dict[Addr, int], rtts: dict[Addr, float]
          ) -> tuple[Addr, Addr, tuple[int | None, int | None], float]:
    """X and Y of a RST, each one's highest sequence end before it, and the time after which Y's
    segments left after the RST reached Y (infinity when Y's round trip is not known)."""
    x, y = (rst.src, rst.sport), (rst.dst, rst.dport)
    rtt = rtts.get(y)
    return x, y, (high.get(x), high.get(y)), rst.time + 2 * rtt if rtt is not None else float("inf")


def _round_trips(conn: Connection) -> dict[Addr, float]:
    """Each end's round trip from the capture point, from the connection's handshake: the server's
    from the SYN to its SYN/ACK, the client's from the SYN/ACK to its ACK (a lost SYN makes the
    server's longer: later segments are then taken for in flight longer, never sooner)."""
    syn = synack = None
    out: dict[Addr, float] = {}
    for p in conn.pk:
        if p.is_first_syn and syn is None:
            syn = p
        elif p.is_synack and synack is None:
            synack = p
            if syn is not None:
                out[(p.src, p.sport)] = p.time - syn.time
        elif synack is not None and p.has_ack and not (p.is_syn or p.is_rst) \
                and (p.dst, p.dport) == (synack.src, synack.sport):
            out[(p.src, p.sport)] = p.time - synack.time
            break
    return out


def _merge(high: dict[Addr, int], gone: Elided) -> None:
    """Each sender's highest sequence end in a middle let go, where it is higher."""
    for key, sent in gone.sent.items():
        h = high.get(key)
        if sent.high is not None and (h is None or seq_after(sent.high, h)):
            high[key] = sent.high


def _advance(high: dict[Addr, int], p: Packet) -> None:
    """Note a non-RST segment's sequence end as its sender's highest, if it is."""
    if p.is_rst or not (p.length or p.is_syn or p.is_fin):
        return
    end = seq_end(p)
    key = (p.src, p.sport)
    h = high.get(key)
    if h is None or seq_after(end, h):
        high[key] = end
