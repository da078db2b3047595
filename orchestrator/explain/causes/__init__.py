"""Every cause `explain` knows, in the one order every reset is checked in.

Adding a cause: write its module here (its docstring says what it is, its
wire signature, what tells it apart from its neighbours, references; then
ID, FAMILIES, TELL, ZEEK, AMBIGUOUS_AS where it applies, and check()), and
add one line to REGISTRY. The first cause whose check() proves its case wins;
the others that fit are listed as candidates (by rank) when none does.

AMBIGUOUS_AS = {family: (place, clause)}: what the family's ambiguous
sentence says for this cause when it is among the candidates (families.py
words it). The no-socket sentence lists one clause per candidate ("it
restarted"), the abort sentence adds one after its own (", or " + clause);
the clauses of one family stand in the order of their places. A cause that
can be a candidate of no-socket has one (a unit test checks).
"""
from __future__ import annotations

from ..verdict import Cause
from . import (
    accept_queue_overflow,
    challenge_ack,
    closed_port,
    connect_timeout,
    conntrack_invalid_liberal,
    conntrack_invalid_unnat,
    data_after_close,
    fin_wait2_timeout,
    firewall_reset,
    half_open,
    keepalive_timeout,
    lb_idle_reset,
    linger_abort,
    listener_close_backlog,
    peer_restart,
    retransmission_abort,
    retransmission_timeout,
    silent_drop,
    socket_destroy,
    syn_scan,
    timewait_overflow,
    unread_data_close,
)

REGISTRY: tuple[Cause, ...] = (
    syn_scan,                  # first: a scanner crafts its SYNs, so its kernel's RST never shares their TTL
    firewall_reset,            # a forged RST is forged whatever its shape
    closed_port,
    connect_timeout,
    accept_queue_overflow,     # before peer-restart: the repeated SYN/ACK decides it
    challenge_ack,             # before peer-restart: a bare ACK to a fresh SYN decides it
    conntrack_invalid_unnat,   # before peer-restart: an un-NATed or out-of-window segment decides it
    fin_wait2_timeout,         # a candidate beside data-after-close when the late data came late
    data_after_close,
    timewait_overflow,         # before peer-restart: a closer's in-order FIN reset
    keepalive_timeout,         # before retransmissions: one-byte probes repeat one seq too
    retransmission_timeout,
    retransmission_abort,      # before the abortive closes: a RST on the retransmission timer's beat decides it
    peer_restart,
    lb_idle_reset,             # before the abortive closes: both legs reset at once decide it
    listener_close_backlog,
    linger_abort,
    unread_data_close,
    socket_destroy,            # a candidate wherever an abortive close is: tcp_abort's RST is the same
    conntrack_invalid_liberal,  # no RST: an out-of-window segment that kept its NAT and drew an ACK
    half_open,                 # no RST: SYN/ACKs the client never answered
    silent_drop,
)

CAUSES: tuple[str, ...] = tuple(c.ID for c in REGISTRY if c is not silent_drop)

# each wire family's causes, in REGISTRY's order: the only ones a reset of that family is checked against
BY_FAMILY: dict[str, tuple[Cause, ...]] = {
    family: tuple(c for c in REGISTRY if family in c.FAMILIES) for c in REGISTRY for family in c.FAMILIES}



def _clauses() -> dict[str, tuple[tuple[str, str], ...]]:
    placed: dict[str, list[tuple[int, str, str]]] = {}
    for c in REGISTRY:
        as_: dict[str, tuple[int, str]] = getattr(c, "AMBIGUOUS_AS", {})
        for family, (place, clause) in as_.items():
            placed.setdefault(family, []).append((place, c.ID, clause))
    return {family: tuple((cause, clause) for _, cause, clause in sorted(p)) for family, p in placed.items()}


# each family's clauses for its ambiguous sentence, as (cause id, clause), in the order of their places
CLAUSES = _clauses()
