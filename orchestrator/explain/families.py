"""What the causes of one wire family share: the abortive close's evidence, and the sentence
said when the packets cannot decide between the family's causes."""
from __future__ import annotations

from itertools import pairwise

from ..capture import Packet
from ..connections import SEQ_MOD, seq_after
from .context import BATCH_WINDOW, Context
from .facts import Facts
from .verdict import Finding, secs

__all__ = ["abort_batch", "abort_evidence", "ambiguous_sentence", "batch_note", "origin_note", "repeated_resets",
           "server_never_sent"]


def server_never_sent(f: Facts) -> bool:
    """The passive side resets an established connection it never sent a byte on."""
    return f.x_role == "server" and f.x_data == 0 and f.handshake


def abort_evidence(f: Facts, found: Finding) -> None:
    """The packets of an abortive close (`R.` where a FIN would be)."""
    x, y = f.x_text, f.y_text
    y_data = [p for p in f.ys if p.length]
    y_fin = next((p for p in f.ys if p.is_fin), None)
    last = y_data[-1] if y_data else None
    closed = f"; {x} is in CLOSE_WAIT from then until its RST" if f.x_fin is None else ""
    with_fin = last is not None and last is y_fin
    found.add(last, f"the last data from {y}" + (f", with its FIN: {y} closes{closed}" if with_fin else ""))
    if y_fin is not None and not with_fin:
        found.add(y_fin, f"{y} closes: FIN{closed}")
    x_acks = [p for p in f.xs if p.has_ack and y_data and p.time > y_data[-1].time]
    if x_acks:     # the first that acknowledges all of it, else the first, saying how far it goes
        covering = next((p for p in x_acks if _covers(p, y_data[-1])), None)
        found.add(covering or x_acks[0], f"{x}'s kernel acknowledges it" if covering is not None
                  else _short_ack(x, x_acks[0], y_data[-1]))
    if f.x_fin is not None:
        found.add(f.x_fin, f"{x} had sent FIN before")
    if server_never_sent(f):
        found.add(next((p for p in f.xs if p.is_syn), None), f"{x}'s kernel completes the handshake")
    fin_note = "" if f.x_fin is not None else ", no FIN"
    found.add(f.rst, f"RST with ACK (seq = {x}'s next byte, ack = all it received){fin_note}: "
                     "an abortive close")


def _covers(ack: Packet, data: Packet) -> bool:
    """Whether `ack` acknowledges `data` to its end."""
    end = (data.seq + data.length) & SEQ_MOD
    return ack.ack == end or seq_after(ack.ack, end)


def _short_ack(x: str, ack: Packet, data: Packet) -> str:
    """X's ACK after Y's last data acknowledges less than all of it: how far (the numbers as the lines print
    them)."""
    relative = ack.rel_ack is not None and data.rel_seq is not None
    upto = ack.rel_ack if relative else ack.ack
    data_end = (data.rel_seq or 0) + data.length if relative else (data.seq + data.length) & SEQ_MOD
    return f"{x}'s next ACK covers only up to {upto}, short of that data's end ({data_end})"


def abort_batch(f: Facts, ctx: Context) -> list[Facts]:
    """The other abortive resets X's address sent, in the same role, within BATCH_WINDOW of this one."""
    return [g for g in ctx.aborts_near(f.x[0], f.rst.time, BATCH_WINDOW) if g is not f and g.x_role == f.x_role]


def batch_note(f: Facts, batch: list[Facts]) -> str:
    """What two or more other connections reset by the same host in the same instant say, or ''."""
    if len(batch) < 2:
        return ""
    peers = sorted({g.y_text for g in batch} | {f.y_text})
    return (f"{f.x[0]} reset {len(batch) + 1} connections within {secs(BATCH_WINDOW)} "
            f"({', '.join(peers[:4])}{' …' if len(peers) > 4 else ''}), whatever each was doing: one event "
            "closed them together (the application or its process ending with its sockets aborted), not each "
            "connection's own timer")


def origin_note(f: Facts) -> str:
    """What the capture point says about the RST when it cannot decide, or ''."""
    if f.origin == "here":
        return (f"the RST left the host this capture was taken on (outgoing, not forwarded): that host "
                f"is {f.x[0]} itself or a firewall answering in its name; naming the capture host's "
                "address decides which")
    if f.origin == "through":
        return f"the capture host forwarded this RST: it came from beyond it ({f.x_text}'s side)"
    return ""


def ambiguous_sentence(f: Facts, candidates: list[Finding],
                       clauses: tuple[tuple[str, str], ...]) -> tuple[str, list[str]]:
    """The sentence (and notes) for a reset the packets cannot pin to one cause; `clauses` are the
    family's (cause id, clause) of causes/ (CLAUSES), in their order."""
    x, y = f.x_text, f.y_text
    ids = [c.cause for c in candidates]
    notes: list[str] = []
    if f.family == "refused":
        note = origin_note(f)
        notes += [note] if note else []
        return (f"The SYN to {x} was refused with a RST in {f.x[0]}'s name (connect() fails with "
                "ECONNREFUSED): either nothing listens on that port, or a firewall on the way "
                "rejected the SYN; a capture at this point alone cannot tell which."), notes
    if f.family == "no-socket":
        note = origin_note(f)
        notes += [note] if note else []
        if f.by_endpoint:
            notes.append(f.by_endpoint + ": no firewall forged it")
        ways = [way for cause, way in clauses if cause in ids] or ids
        return (f"{x} answered {y}'s segment with a bare RST, as a host does for a connection it does "
                f"not know or has closed: {', or '.join(ways)}; this capture alone cannot tell which."), notes
    if f.family == "abort":
        if not f.ys:
            notes.append(f"only {x}'s packets of this connection are in the capture (one direction recorded): "
                         f"the {f.y_data_acked} bytes it received are read from its acknowledgments, and "
                         f"what {y} sent or whether it had closed cannot be seen")
        return _abort_sentence(f, ids, clauses), notes + ([] if f.handshake else
                                                          ["the capture starts mid-connection: earlier data is not in it"])
    return (f"{x}'s RST fits {' or '.join(ids)}; the packets cannot tell which."), notes


def _abort_sentence(f: Facts, ids: list[str], clauses: tuple[tuple[str, str], ...]) -> str:
    """An abortive `R.` that several causes send alike."""
    x = f.x_text
    more = "".join(f", or {clause}" for cause, clause in clauses if cause in ids)
    if server_never_sent(f):
        n = f.y_data_acked
        what = f"it received {n} bytes and never answered" if n else "no data ever flowed"
        return (f"{x} reset the connection without ever sending a byte ({what}): its listener closed "
                "with the connection still queued, or the application accepted it and closed it "
                + ("with the data unread" if n else "abortively") + more
                + "; the wire looks the same in every case.")
    if f.y_data_acked == 0 and not f.handshake:      # what it received before the capture began is not in it
        return (f"{x} reset the connection instead of closing it with FIN, and the capture, which starts "
                "mid-connection, holds no data it received: it closed with data still unread from before, or it "
                "aborted on purpose (SO_LINGER {1, 0})" + more + "; each sends this same RST, and the peer sees "
                "ECONNRESET.")
    if f.y_data_acked == 0:
        return (f"{x} reset the connection instead of closing it with FIN, with nothing left to read: it "
                "aborted on purpose (SO_LINGER {1, 0})" + more + "; each sends this same RST, and the peer "
                "sees ECONNRESET.")
    return (f"{x} reset the connection instead of closing it with FIN after receiving "
            f"{f.y_data_acked} bytes: it closed with data still unread, or it aborted on purpose "
            "(SO_LINGER {1, 0})" + more + "; each sends this same RST, and the peer sees ECONNRESET.")


def repeated_resets(f: Facts) -> str:
    """For a connection of nothing but one sender's bare RSTs, all with one seq: what their repetition
    says (each answers the same segment, seq = its ack, which the peer keeps sending), or ''."""
    pk = f.conn.pk
    gone = f.conn.gone()        # a long flood's middle let go (facts.Elided): RSTs all, of one look
    count = len(pk) + sum(g.count for g in gone)
    if count < 3 or any(not p.is_rst or p.has_ack or (p.src, p.sport) != f.x or p.seq != f.rst.seq for p in pk) \
            or any(g.resets != g.count or g.rst_looks != {(f.x, False, f.rst.seq)} for g in gone):
        return ""
    span = pk[-1].time - pk[0].time
    gap = sorted(q.time - p.time for p, q in pairwise(pk))[(len(pk) - 1) // 2]     # the median (of those held)
    over = secs(span) + (f" ({span / 3600:.1f} h)" if span >= 3600 else "")
    return (f"The capture holds only RSTs from {f.x_text} for this connection: the same bare RST (seq "
            f"{f.rst.seq}) {count} times, about every {secs(gap)} over {over}. Each "
            f"answers the same segment of {f.y_text} (seq = its ack), which {f.y_text} keeps sending and this "
            "capture does not hold, and none of them ended the connection there (they may never reach it); "
            "nothing here tells why the connection is unknown to its sender.")
