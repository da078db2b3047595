"""socket-destroy: something on the resetting host destroyed the socket from outside (`ss -K`, SOCK_DESTROY).

Wire signature: `R.` (seq = snd_nxt, ack = rcv_nxt) on an established
connection, at a moment of the host's choosing, with no FIN: tcp_abort()
stores ECONNABORTED as the socket's error, sends tcp_send_active_reset()
(the kernel's reason: TCP_STATE) and closes the socket with tcp_done(). The
application that owns the socket closed nothing; it gets ECONNABORTED, its
peer ECONNRESET.

Apart from its neighbours: nothing on the wire. An application's close()
with SO_LINGER {1, 0} (linger-abort) and a listener closed with the
connection queued (listener-close-backlog) go through tcp_disconnect(), which
sends the same RST with the same reason; so this cause is a candidate
wherever those are, and only the resetting host can tell: ECONNABORTED in its
application, or an agent that destroys sockets (Android's netd, a CNI or a
service mesh cleaning up a backend's connections, a script running `ss -K`).

References: net/ipv4/tcp.c tcp_abort (tcp_need_reset: tcp_send_active_reset
with SK_RST_REASON_TCP_STATE); net/ipv4/tcp_diag.c tcp_diag_destroy
(CONFIG_INET_DIAG_DESTROY); ss(8) -K; scenario socket-destroy.
"""
from __future__ import annotations

from ..context import Context
from ..facts import Facts
from ..families import abort_evidence
from ..verdict import Finding

ID = "socket-destroy"
FAMILIES = frozenset({"abort"})
TELL = ("ECONNABORTED in the resetting side's application (its own kernel aborted the socket, it closed "
        "nothing); an agent on that host that destroys sockets (`ss -K`, SOCK_DESTROY from netd, a CNI or a "
        "service mesh); the kernel's tcp_send_reset tracepoint says TCP_STATE for this and for an "
        "SO_LINGER {1, 0} close alike")
ZEEK = "RSTO or RSTR, history ShADadR without F (the same as an abortive close)"
AMBIGUOUS_AS = {"abort": (20, "its socket was destroyed from outside (`ss -K`; the application gets ECONNABORTED)")}


def check(f: Facts, ctx: Context) -> Finding | None:
    found = Finding(ID, f"the socket of {f.x_text} may have been destroyed from outside (`ss -K`, "
                        "SOCK_DESTROY): tcp_abort sends exactly this RST, and its application gets "
                        "ECONNABORTED without having closed anything", TELL, rank=4)
    abort_evidence(f, found)
    return found
