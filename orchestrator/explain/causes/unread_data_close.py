"""unread-data-close: the application closed its socket with received data unread.

Wire signature: `R.` (seq = snd_nxt, ack = rcv_nxt) instead of a FIN after
data came in: tcp_close sends a RST when the receive queue is not empty.

Apart from its neighbours: linger-abort sends the identical RST; the wire can
only rule this cause out (nothing was ever received), never prove it.

References: net/ipv4/tcp.c __tcp_close (data_was_unread:
TCP_MIB_ABORTONCLOSE); RFC 2525 §2.17; SCENARIOS.md unread-data-close.
"""
from __future__ import annotations

from ..context import Context
from ..facts import Facts
from ..families import abort_evidence, server_never_sent
from ..verdict import Finding

ID = "unread-data-close"
FAMILIES = frozenset({"abort"})
TELL = ("whether the application read everything before close() (strace, its logs); nstat "
        "TcpExtTCPAbortOnClose counts these resets")
ZEEK = "RSTO or RSTR, history ShADadR without F, the resetter's peer sent data"


def check(f: Facts, ctx: Context) -> Finding | None:
    n = f.y_data_acked
    if n == 0 and f.handshake:
        return None
    first = server_never_sent(f) or f.y_unanswered > 0 or not f.handshake
    received = (f"had received {n} bytes from {f.y_text}" if n else
                f"had received no data from {f.y_text} in this capture, which starts mid-connection (what came before "
                "it may be unread)")
    why = (f"{f.x_text} {received}"
           + (f", {f.y_unanswered} of them after it last sent anything" if f.y_unanswered else "")
           + "; closing with unread data sends RST instead of FIN")
    found = Finding(ID, why, TELL, rank=0 if first else 3)
    abort_evidence(f, found)
    return found
