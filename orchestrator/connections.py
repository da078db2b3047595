"""Which TCP connection a segment belongs to, and its sequence numbers relative to the ISNs.

The one place that reconstructs connections from segments: the capture reader
uses it for relative sequence numbers, `explain` for grouping packets into
connections. A pure module: no I/O.

The rule: a sender's ISN is the sequence number of the SYN it sent for the
connection. A SYN without ACK carrying a sequence number other than its
sender's ISN starts a new connection on that 4-tuple (the peer's ISN is
forgotten until its SYN/ACK). Packets of a sender that has sent no SYN so far
(the capture started mid-connection) have no relative sequence number.
"""
from __future__ import annotations

__all__ = ["SEQ_MOD", "TH_ACK", "TH_SYN", "ConnectionTracker", "seq_after"]

SEQ_MOD = 0xFFFFFFFF          # sequence numbers are 32-bit and wrap
TH_SYN, TH_ACK = 0x02, 0x10   # the TCP header's flag bits the rule needs

Direction = tuple[str, int, str, int]    # source address, port, destination address, port


def seq_after(a: int, b: int) -> bool:
    """a is later than b in sequence space (RFC 793 modular comparison)."""
    return 0 < ((a - b) & SEQ_MOD) < 0x80000000


class ConnectionTracker:
    """Feed it every segment in capture order; it names each segment's connection (0, 1, ...)
    and gives its relative sequence and acknowledgment numbers.

    Each direction of a 4-tuple maps to its connection number and, once its SYN is seen, its ISN: two
    dicts of numbers, so a segment costs a tuple or two and a few dict lookups, and a million connections
    leave the cyclic garbage collector nothing to scan (no list, no cycle between the two directions).
    """

    __slots__ = ("_conn", "_isn", "connections")

    def __init__(self) -> None:
        self._conn: dict[Direction, int] = {}     # direction -> its connection's number
        self._isn: dict[Direction, int] = {}      # direction -> its sender's ISN (its SYN's sequence number)
        self.connections = 0                     # connections seen so far

    def segment(self, src: str, sport: int, dst: str, dport: int, flags: int, seq: int,
                ack: int) -> tuple[int, int | None, int | None]:
        """(connection number, relative seq or None, relative ack or None) of one segment;
        `flags` is the TCP header's flag byte."""
        k = (src, sport, dst, dport)
        conns = self._conn
        conn = conns.get(k)
        fresh = conn is None
        if conn is None:
            conn = conns.get((dst, dport, src, sport))
            if conn is None:
                conn = conns[(dst, dport, src, sport)] = self.connections
                self.connections += 1
            conns[k] = conn
        isns = self._isn
        isn = isns.get(k)
        if flags & TH_SYN and isn != seq:
            isns[k] = isn = seq
            if not flags & TH_ACK and not fresh:             # a new SYN: a new connection on this 4-tuple
                rk = (dst, dport, src, sport)
                isns.pop(rk, None)             # the peer's ISN is forgotten until its SYN/ACK
                conn = conns[k] = conns[rk] = self.connections
                self.connections += 1
        rel_seq = None if isn is None else (seq - isn) & SEQ_MOD
        rel_ack = None
        if flags & TH_ACK:
            isn = isns.get((dst, dport, src, sport))
            if isn is not None:
                rel_ack = (ack - isn) & SEQ_MOD
        return conn, rel_seq, rel_ack
