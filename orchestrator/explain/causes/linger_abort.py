"""linger-abort: the application closed abortively (SO_LINGER {1, 0}).

Wire signature: `R.` (seq = snd_nxt, ack = rcv_nxt) instead of a FIN, from
tcp_send_active_reset.

Apart from its neighbours: closing with unread data (unread-data-close) sends
the same RST; only "nothing was ever received" rules that out. Even then a
socket destroyed from outside (socket-destroy: tcp_abort, `ss -K`) sends the
same RST with the same kernel reason (TCP_STATE), so the wire never proves
which of the two aborted.

References: net/ipv4/tcp.c __tcp_close (sock_flag SOCK_LINGER with
lingertime 0: tcp_disconnect); SCENARIOS.md linger-abort.
"""
from __future__ import annotations

from ..context import Context
from ..facts import Facts
from ..families import abort_batch, abort_evidence, batch_note, server_never_sent
from ..verdict import Finding

ID = "linger-abort"
FAMILIES = frozenset({"abort"})
TELL = ("whether the application sets SO_LINGER {1, 0} (or aborts the socket) before close(); "
        "nstat TcpExtTCPAbortOnData counts linger-0 resets")
ZEEK = "RSTO or RSTR, history ShADadR without F"


def check(f: Facts, ctx: Context) -> Finding | None:
    silent_server = server_never_sent(f)
    if f.y_data_acked == 0 and f.handshake and not silent_server:
        why = (f"nothing ever came from {f.y_text}, so nothing can have been left unread: an abortive "
               "close (SO_LINGER {1, 0})")
        found = Finding(ID, why, TELL, rank=0)
    else:
        found = Finding(ID, "an abortive close (SO_LINGER {1, 0}) sends exactly this RST, whatever "
                            "was read", TELL, rank=2 if silent_server else 1)
    abort_evidence(f, found)
    note = "" if silent_server else batch_note(f, abort_batch(f, ctx))
    found.notes += [note] if note else []
    return found
