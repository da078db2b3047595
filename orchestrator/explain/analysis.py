"""Run every reset of a capture through the cause registry: packets in, explanations out."""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from itertools import pairwise

from ..capture import Capture, Packet, read_capture
from .causes import REGISTRY
from .context import Context
from .facts import Facts, connections, facts_of, stray_facts
from .families import ambiguous_sentence
from .origin import forged_evidence, sent_by_endpoint, uncomparable
from .paths import RstPath, on_path
from .result import AMBIGUOUS, UNKNOWN, CaptureExplanation, Explanation, endpoint
from .verdict import Finding, explanation

__all__ = ["explain_capture", "explain_file", "explain_packets"]


def explain_file(path: str) -> CaptureExplanation:
    """Read a capture and explain it; raises CaptureError for a file that is not one."""
    return explain_capture(read_capture(path))


def explain_capture(capture: Capture, local_addresses: Iterable[str] = (),
                    paths: Mapping[int, RstPath] | None = None) -> CaptureExplanation:
    """Explain one parsed capture.

    `local_addresses` are addresses the capture host is known to own (optional):
    a RST the capture host sent with another address as its source is forged.
    `paths` (RST packet index -> its path across capture points, `paths.rst_paths`)
    decides where a RST came from when other captures of the connection show it.
    """
    packets = capture.packets
    t0 = packets[0].time if packets else 0.0
    conns = connections(packets)
    ctx = Context(conns, t0, frozenset(local_addresses), capture.icmp)
    explanations = _explain(ctx, paths or {})
    return CaptureExplanation(capture.path, len(packets), capture.other, capture.truncated,
                              len(conns), t0, tuple(explanations), tuple(capture_notes(ctx, capture)))


def explain_packets(packets: Sequence[Packet], t0: float | None = None,
                    local_addresses: Iterable[str] = ()) -> list[Explanation]:
    """Explain a sequence of packets (in capture order)."""
    if t0 is None:
        t0 = packets[0].time if packets else 0.0
    return _explain(Context(connections(packets), t0, frozenset(local_addresses)))


def capture_notes(ctx: Context, capture: Capture) -> list[str]:
    """What kind of capture this is, where that changes what can be concluded."""
    notes: list[str] = []
    if ctx.one_sided:
        syns = sum(1 for c in ctx.conns if c.only_syns)
        notes.append("one-sided capture: no connection has a packet in the other direction, so the "
                     "answers were not recorded" + (f"; the {syns} unanswered SYNs are not called "
                                                    "dropped" if syns else ""))
    copies = sum(len(c.raw) - len(c.pk) for c in ctx.conns if c.pk)
    if copies:
        notes.append(f"{copies} copies of frames seen twice were folded (forwarded in and out, or a "
                     "mirror port duplicating them)")
    back = [p for p, q in pairwise(capture.packets) if q.time < p.time]
    if back:
        notes.append(f"timestamps go backwards {len(back)} time{'s' if len(back) > 1 else ''} (first "
                     f"after packet {back[0].index}): packets are taken in file order")
    for err in capture.icmp[:3]:
        notes.append(f"ICMP {err.kind} from {err.sender} at {err.time - ctx.t0:.6f} about "
                     f"{endpoint(err.src, err.sport)} > {endpoint(err.dst, err.dport)}")
    if len(capture.icmp) > 3:
        notes.append(f"{len(capture.icmp) - 3} more ICMP errors about TCP segments")
    return notes


def _explain(ctx: Context, paths: Mapping[int, RstPath] | None = None) -> list[Explanation]:
    conns, t0 = ctx.conns, ctx.t0
    ctx.end_time = max((c.raw[-1].time for c in conns), default=t0)
    todo: list[Facts] = []
    for c in conns:
        if c.has_reset or c.only_syns:
            f = facts_of(c)
        else:
            stray = stray_facts(c)       # no RST, but a segment that would have drawn one through NAT
            if stray is None:
                continue
            f = stray
        ctx.note_reset(f)
        todo.append(f)
    out: list[Explanation] = []
    for f in todo:
        path = (paths or {}).get(f.rst.index) if f.rst.is_rst else None
        if f.rst.is_rst:
            f.forged = forged_evidence(f, ctx)
            f.by_endpoint = "" if f.forged else sent_by_endpoint(f, ctx)
            if path is not None:
                on_path(f, path)
        e = classify(f, ctx)
        if e is not None:
            out.append(e if path is None else replace(e, path=path))
    out.sort(key=lambda e: e.start)
    return out


def classify(f: Facts, ctx: Context) -> Explanation | None:
    """The first cause that proves its case, else the causes that fit, else `unknown`."""
    fits: list[Finding] = []
    for cause in REGISTRY:
        if f.family not in cause.FAMILIES:
            continue
        found = cause.check(f, ctx)
        if found is None:
            continue
        if found.decided:
            cands = [] if found.cause == UNKNOWN else [found]
            return explanation(f, ctx, found.cause, found.sentence, cands, found.evidence, found.notes)
        fits.append(found)
    if f.family in ("unanswered", "out-of-window"):
        return None
    if not fits:
        return _unknown(f, ctx)
    fits.sort(key=lambda c: c.rank)
    evidence = [e for c in fits for e in c.evidence]
    notes = [n for c in fits for n in c.notes]
    if len(fits) == 1:            # every other cause of the family is ruled out
        only = fits[0]
        return explanation(f, ctx, only.cause, only.sentence, fits, evidence, notes)
    sentence, more = ambiguous_sentence(f, fits)
    note = uncomparable(f, ctx)
    return explanation(f, ctx, AMBIGUOUS, sentence, fits, evidence, notes + more + ([note] if note else []))


def _unknown(f: Facts, ctx: Context) -> Explanation:
    x = f.x_text
    evidence: list[tuple[Packet | None, str]] = [(p, "before the reset") for p in f.before[-3:]]
    evidence.append((f.rst, f"the first RST, from {x}"))
    if f.family == "lonely":
        sentence = (f"The capture holds only the RST from {x} for this connection (it began before the "
                    "capture did, or its packets were lost), so there is nothing to tell its cause by.")
    else:
        sentence = f"{x} sent a RST ({f.rst.flags}) that fits none of the known causes: see the packets before it."
    return explanation(f, ctx, UNKNOWN, sentence, [], evidence, [])
