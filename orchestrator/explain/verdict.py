"""What a cause unit gives back (`Finding`), what every cause unit provides (`Cause`), and how
findings become an `Explanation`."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Protocol

from ..capture import Packet, format_packet
from ..encap import IcmpError
from .carry_on import why_not_taken
from .context import Context
from .facts import Facts
from .origin import later_forged
from .result import Candidate, Evidence, Explanation, endpoint
from .zeek import LIKELY_SERVER_PORTS, zeek_conn, zeek_ends

__all__ = ["MAX_EVIDENCE", "Cause", "Finding", "explanation", "icmp_notes", "secs"]

MAX_EVIDENCE = 8


class Cause(Protocol):
    """One cause of a reset: a module under `explain/causes/` with these names."""

    ID: str                      # the cause id (SCENARIOS.md ids are contracts)
    FAMILIES: frozenset[str]     # the wire families (facts.py) it can explain
    TELL: str                    # what would confirm it or rule it out
    ZEEK: str                    # the Zeek conn_state/history it would have

    def check(self, f: Facts, ctx: Context) -> Finding | None:
        """A finding when the reset fits this cause, else None."""
        ...


@dataclass(slots=True)
class Finding:
    """What a cause unit says about one reset.

    `decided` means the packets prove it; otherwise it is a candidate, and
    candidates of one reset are listed in `rank` order (lower first).
    """

    cause: str
    why: str
    tell: str
    decided: bool = False
    sentence: str = ""
    evidence: list[tuple[Packet | None, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    rank: int = 5

    def add(self, p: Packet | None, why: str) -> None:
        """Add a deciding packet (None is skipped)."""
        if p is not None:
            self.evidence.append((p, why))


def secs(dt: float) -> str:
    """`12.0 ms` below a second, `1.03 s` above."""
    return f"{dt * 1000:.1f} ms" if dt < 1 else f"{dt:.2f} s"


def _packet_index(evidence: tuple[Packet, str]) -> int:
    return evidence[0].index


def explanation(f: Facts, ctx: Context, cause: str, sentence: str, candidates: list[Finding],
                evidence: list[tuple[Packet | None, str]], notes: list[str]) -> Explanation:
    """Assemble the verdict for one connection."""
    conn = f.conn
    taken: dict[int, tuple[Packet, str]] = {}     # by id(): a packet counts once, by identity, with its first why
    for p, why in evidence:
        if p is not None and id(p) not in taken:
            taken[id(p)] = (p, why)
    chosen = sorted(taken.values(), key=_packet_index)
    if len(chosen) > MAX_EVIDENCE:
        chosen = chosen[:2] + chosen[-(MAX_EVIDENCE - 2):]
    t0 = ctx.t0
    ev = [Evidence(p, format_packet(p, t0=t0), why) for p, why in chosen]
    client: str | None = None
    server: str | None = None
    is_reset = f.rst.is_rst
    side = f.x_role if is_reset else None
    if conn.client is not None and conn.server is not None:
        client, server = endpoint(*conn.client), endpoint(*conn.server)
        ends = (client, server)
    else:                                       # no SYN, no SYN/ACK: the ends Zeek's conn.log gives it
        orig, resp, _ = zeek_ends(conn.pk[0])
        ends = (endpoint(*orig), endpoint(*resp))
        if is_reset and side is None:
            side = port_side(f.x, f.y)
    # the connection's conn.log row (a long one's was fed as it came)
    state, history = conn.zeek.row() if conn.zeek is not None else zeek_conn(conn.pk if conn.whole is None else conn.whole)
    resets = conn.resets
    packets = len(conn.pk) + sum(gone.count for gone in conn.gone())
    notes = list(notes)
    if is_reset and resets > 1:
        more = f"{resets - 1} more RST{'s' if resets > 2 else ''} followed the first"
        forged = later_forged(f)
        if resets == packets:
            notes.append(f"{more}, and the capture holds nothing else of this connection")
        elif not forged and (answered := answered_segments(conn.pk, conn.rst_pos)):
            if all(p.is_syn and not p.has_ack for p in answered):
                gaps = sorted(q.time - p.time for p, q in pairwise([conn.pk[0], *answered]))
                notes.append(f"{more}, each answering the SYN sent again ({len(answered)} time"
                             f"{'s' if len(answered) > 1 else ''}, about {secs(gaps[len(gaps) // 2])} apart): the "
                             "client retried the connect it was refused, as Windows does (twice, 0.5 s apart), where "
                             "Linux fails it at once")
            else:
                notes.append(f"{more} (answers to segments still on their way)")
        else:
            notes.append(more)        # forged on the path, or crafted by the sender: other notes say which
        notes += forged
    if is_reset and ctx.icmp:
        notes += icmp_notes(ctx.icmp_about(conn), f.rst, t0)
    if conn.carried_on is not None:   # what every cause's sentence says the RST did, it did not do here
        sentence += " Here, though, the connection went on past this RST (see the notes)."
        ack, later = conn.carried_on
        notes.append(f"the connection carried on past this RST ({endpoint(ack.src, ack.sport)} acknowledged a later "
                     f"segment at {ack.time - t0:.6f}): its RST at {later.time - t0:.6f} has a verdict of its own")
        dropped = why_not_taken(conn.pk, conn.rst_pos)
        if dropped is not None:
            notes.append(dropped)
    if conn.earlier is not None:
        notes.append(f"the connection had carried on past an earlier RST, at {conn.earlier.time - t0:.6f}, which "
                     "has a verdict of its own")
    return Explanation(
        cause=cause, sentence=sentence, client=client, server=server, endpoints=ends,
        rst_from=endpoint(*f.x) if is_reset else None,
        rst_side=side,
        candidates=tuple(Candidate(c.cause, c.why, c.tell) for c in candidates),
        evidence=tuple(ev), notes=tuple(notes),
        start=conn.pk[0].time, rst_time=f.rst.time if is_reset else None,
        packets=packets, resets=resets,
        conn_state=state, history=history, forged=tuple(f.forged), outlived=conn.carried_on is not None,
        elided=tuple((int(n), t, t_last) for gone in conn.gone() for _, n, t, t_last in gone.gaps),
        segments=tuple(conn.pk))


def icmp_notes(errors: Sequence[IcmpError], rst: Packet, t0: float) -> list[str]:
    """What the ICMP errors about a reset connection's segments say, one note per sender and kind: an ICMP error
    means the segment it quotes was dropped where it was sent from (after a RST: the path, or the host behind
    it, no longer took the connection's segments)."""
    by: dict[tuple[str, str], list[IcmpError]] = {}
    for err in errors:
        by.setdefault((err.sender, err.kind), []).append(err)
    notes: list[str] = []
    for (sender, kind), errs in by.items():
        first, n = errs[0], len(errs)
        when = (f"{secs(first.time - rst.time)} after the first RST" if first.time >= rst.time
                else f"{secs(rst.time - first.time)} before the first RST")
        notes.append(f"{sender} sent ICMP {kind} about {n} of this connection's segments, the first at "
                     f"{first.time - t0:.6f} ({when}): they were dropped there, not delivered")
    return notes


def port_side(sender: tuple[str, int], peer: tuple[str, int]) -> str | None:
    """The RST sender's side in a connection whose handshake the capture lacks, where the ports tell: the end on
    a likely server port (Zeek's likely_server_ports) is the server, when the other end's port is not one."""
    mine, theirs = sender[1] in LIKELY_SERVER_PORTS, peer[1] in LIKELY_SERVER_PORTS
    return None if mine == theirs else "server" if mine else "client"


def answered_segments(pk: list[Packet], first: int) -> list[Packet]:
    """The segment each RST after the one at `first` answers: the last packet before it that is not a RST,
    its sender's peer's (a segment still on its way when the first RST left, or one sent again). Empty when
    one follows its own sender's segment (a scanner's crafted one, a copy): it answers nothing this capture holds."""
    answered: list[Packet] = []
    for j in range(first + 1, len(pk)):
        rst = pk[j]
        if not rst.is_rst:
            continue
        before = next((pk[k] for k in range(j - 1, -1, -1) if not pk[k].is_rst), None)
        if before is None or (before.sport == rst.sport and before.src == rst.src):
            return []
        answered.append(before)
    return answered
