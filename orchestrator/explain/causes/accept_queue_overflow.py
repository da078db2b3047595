"""accept-queue-overflow: the listener's accept queue was full when the handshake completed.

Wire signature: SYN, SYN/ACK, the client's ACK, and then the server sends its
SYN/ACK again: it dropped the ACK because the accept queue was full
(tcp_abort_on_overflow=0). With tcp_abort_on_overflow=1 the server answers
that ACK with a bare `R` (seq = its ISN+1) instead; the client's connect()
had already succeeded, so its first read or write fails with ECONNRESET.
With 0, the connection hangs until the client gives up (its own `R.`).

Apart from its neighbours: peer-restart answers with the same bare RST, but
a restarted server does not repeat its SYN/ACK after the client's ACK; a
listener closing with the connection queued (listener-close-backlog) sends
`R.`, not a bare `R`.

References: net/ipv4/tcp_minisocks.c tcp_check_req (listen_overflow:
sysctl_tcp_abort_on_overflow, inet_rsk(req)->acked); ip-sysctl.rst
tcp_abort_on_overflow; SCENARIOS.md accept-queue-overflow.
"""
from __future__ import annotations

from ...capture import Packet
from ...connections import SEQ_MOD
from ..context import Context
from ..facts import Facts
from ..verdict import Finding

ID = "accept-queue-overflow"
FAMILIES = frozenset({"no-socket", "abort"})
TELL = ("`nstat TcpExtListenOverflows TcpExtListenDrops` on the server, and `ss -ltn` showing "
        "Recv-Q at the backlog; the server's tcp_abort_on_overflow decides RST or silence")
ZEEK = "RSTR, history ShAr (abort_on_overflow=1); RSTO, history ShAhAR (0: the SYN/ACK repeated)"


def _repeated_synack(server: list[Packet], client: list[Packet]) -> Packet | None:
    """The server's SYN/ACK sent again after the client had acknowledged it."""
    synacks = [p for p in server if p.is_synack]
    acks = [p for p in client if p.has_ack and not p.is_syn]
    if len(synacks) < 2 or not acks:
        return None
    return next((p for p in synacks[1:] if p.time > acks[0].time), None)


def check(f: Facts, ctx: Context) -> Finding | None:
    if f.x_role == "server" and f.family == "no-socket" and f.x_data == 0 and f.x_fin is None:
        if f.conn.server_isn is None or f.rst.seq != (f.conn.server_isn + 1) & SEQ_MOD:
            return None
        again = _repeated_synack(f.xs, f.ys)
        if again is None:
            return None
        found = Finding(ID, f"{f.x_text} repeated its SYN/ACK after the client's ACK (the ACK found the "
                            "accept queue full), then answered the ACK with a bare RST: "
                            "tcp_abort_on_overflow=1", TELL, decided=True)
        found.add(again, "the SYN/ACK again: the client's ACK was dropped, the accept queue was full")
        found.add(f.answered, "the client's ACK")
        found.add(f.rst, "RST without ACK, seq = ISN+1: the listener refuses the completed handshake")
        found.sentence = (f"The listener at {f.x_text} had a full accept queue: it dropped the client's "
                          "ACK, repeated its SYN/ACK, and with tcp_abort_on_overflow=1 answered the next "
                          "ACK with RST; the client's connect() had succeeded, so its first read or write "
                          "fails with ECONNRESET.")
        return found
    if f.x_role == "client" and f.family == "abort" and not any(p.length for p in f.ys):
        again = _repeated_synack(f.ys, f.xs)
        if again is None:
            return None
        y = f.y_text
        found = Finding(ID, f"{y} repeated its SYN/ACK after the client's ACK and never sent a byte: "
                            "its accept queue was full (tcp_abort_on_overflow=0 drops the ACK)",
                        TELL, decided=True)
        found.add(next((p for p in f.xs if p.has_ack and not p.is_syn), None), "the client's ACK")
        found.add(again, "the SYN/ACK again: the ACK was dropped, the accept queue was full")
        found.add(f.rst, f"{f.x_text} gives up and aborts the connection")
        found.sentence = (f"The listener at {y} had a full accept queue (tcp_abort_on_overflow=0): it "
                          "dropped the client's ACK and repeated its SYN/ACK, so the connection never "
                          f"reached the application; {f.x_text} gave up waiting and reset it.")
        return found
    return None
