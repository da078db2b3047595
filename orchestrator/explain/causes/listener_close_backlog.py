"""listener-close-backlog: the listening socket closed with connections still in its queue.

Wire signature: `R.` from the passive side of an established connection on
which it never sent a byte; closing a listener resets every queued connection
in the same instant, so several such RSTs from one listener within
BATCH_WINDOW mark it.

Apart from its neighbours: a single such RST is also what an application
sends that accepted the connection and closed it with unread data
(unread-data-close) or with SO_LINGER {1, 0} (linger-abort).

References: net/ipv4/inet_connection_sock.c inet_csk_listen_stop
(tcp_disconnect on each child); SCENARIOS.md listener-close-backlog.
"""
from __future__ import annotations

from ..context import BATCH_WINDOW, Context
from ..facts import Facts
from ..families import abort_evidence, server_never_sent
from ..verdict import Finding, secs

ID = "listener-close-backlog"
FAMILIES = frozenset({"abort"})
TELL = ("whether the application ever accepted the connection; closing a listener resets every "
        "queued connection in the same instant, and counts in neither TcpExtTCPAbortOnClose nor "
        "TcpExtTCPAbortOnData")
ZEEK = "RSTR, history ShADr (the responder never sent data: no d)"


def check(f: Facts, ctx: Context) -> Finding | None:
    if not server_never_sent(f):
        return None
    x = f.x_text
    batch = ctx.batch_size(f.x, f.rst.time)
    if batch > 1:
        why = (f"{batch} connections queued on {x} were reset within {secs(BATCH_WINDOW)} of each "
               "other, and it never sent a byte on them")
        found = Finding(ID, why, TELL, decided=True)
        found.sentence = (f"The application at {x} closed its listening socket (or exited) while this "
                          "connection still waited in the accept queue; the kernel resets every queued "
                          "connection, and the client sees ECONNRESET.")
        found.notes.append("a process that exits with accepted but unread connections resets them at "
                           "the same moment too (unread-data-close)")
    else:
        found = Finding(ID, f"{x} never sent a byte: the connection may never have been accepted",
                        TELL, rank=1)
    abort_evidence(f, found)
    return found
