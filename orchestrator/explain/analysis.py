"""Explain a capture in two streaming passes: packets in, explanations out, in memory that
grows with the connections and the resets' context, never with the packet count.

Pass one (`Survey`) learns what is capture-wide: which connections hold a RST
or only SYNs, where each ends, how each address's packets look. Pass two
keeps the packets of those connections only, and as each one ends turns it
into `Facts`; a reset is classified once no reset still to come can change
its verdict (a listener's batch within BATCH_WINDOW, a refusal before it),
and its packets are let go. A connection that runs long keeps only its first
packets, those right after its latest RST (but a RST that repeats the one
before with nothing new between: a flood's), its last ones and its SYNs and
FINs; its middle is fed to its Zeek row and counted and summed as it goes, its
RSTs by sender and TTL (`facts.Connection.elide`). Progress is reported as data: `progress(done,
total)` in bytes of both passes, a chunk of the file at a time, for the
command layer to show.
"""
from __future__ import annotations

import gc
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace

from ..capture import Capture, ConnectionLog, Packet, PacketReader, capture_size, open_capture
from ..connections import ConnectionTracker
from ..encap import IcmpError
from .carry_on import parts
from .causes import BY_FAMILY, CLAUSES
from .causes.lb_idle_reset import PAIR_WINDOW
from .context import BATCH_WINDOW, ONE_SIDED_MIN, Context
from .facts import Connection, Facts, facts_of, stray_facts
from .families import ambiguous_sentence, repeated_resets
from .incidents import SCAN_PORTS
from .origin import forged_evidence, sent_by_endpoint, uncomparable
from .paths import RstPath, on_path
from .result import AMBIGUOUS, UNKNOWN, CaptureExplanation, Explanation, endpoint
from .store import SPILL_AFTER, Explanations
from .survey import Survey
from .verdict import Finding, explanation

__all__ = ["Progress", "Surveyed", "explain_capture", "explain_file", "explain_packets", "explain_surveyed", "few_collections",
           "survey_file"]

Progress = Callable[[int, int], None]     # (bytes done, bytes in all) of both passes
CHECK_EVERY = 1 << 12                     # packets between looks at the resets waiting for a verdict
FEW_COLLECTIONS = 100_000                 # allocations between the cyclic collector's runs while explaining

Numbered = Iterable[tuple[int, Packet]]   # (connection number, packet), in file order


@contextmanager
def few_collections() -> Iterator[None]:
    """Run the cyclic garbage collector a hundred times less often: for the `explain` command, around all it
    does (the threshold is the process's, so the command layer sets it, not these pure functions). Each run
    scans every live container: the survey's per connection state, the packets of the connections waiting
    for their verdicts (a packet is a tuple subclass, never untracked), every packet of several points read
    whole. Explaining makes no reference cycles (tests/unit/test_explain_size.py), so the collector finds
    nothing there; it cost a scan's capture of 100,000 SYNs half its time."""
    threshold = gc.get_threshold()
    gc.set_threshold(max(threshold[0], FEW_COLLECTIONS), *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)


@dataclass
class Surveyed:
    """A capture file's first pass: its survey, each frame's connection number (`log`, a temporary file:
    `close` it), and what the reader counted."""

    name: str
    survey: Survey
    log: ConnectionLog
    other: int                 # frames that were not TCP
    truncated: bool

    def close(self) -> None:
        self.log.close()


def survey_file(name: str, progress: Callable[[int], None] | None = None) -> Surveyed:
    """Read a capture file once, a chunk at a time: its survey and its frames' connection numbers (raises
    CaptureError for a file that is not a capture). `progress(done)`: bytes read so far."""
    survey = Survey()
    log = ConnectionLog()
    try:
        with open_capture(name) as f:
            reader = PacketReader(f, name, log=log)
            if progress is not None:
                reader.frames.on_chunk = progress
            survey.take(reader)
        survey.icmp = tuple(reader.icmp)
        if survey.twin_ends():
            with open_capture(name) as f:
                _mark_opened(survey, PacketReader(f, name))
    except BaseException:
        log.close()
        raise
    return Surveyed(name, survey, log, reader.other, reader.truncated)


def explain_file(path: str | os.PathLike[str], local_addresses: Iterable[str] = (),
                 progress: Progress | None = None, spill_after: int = SPILL_AFTER,
                 segments: bool = True, json: bool = False, verdicts: bool = True) -> CaptureExplanation:
    """Read a capture file twice, a chunk at a time, and explain it; raises CaptureError for a
    file that is not one. Beyond `spill_after` verdicts, they wait for the output in a temporary
    file (`store.Explanations`), without their packets unless `segments` (only the incidents'
    examples keep theirs then: all the terminal and the page draw by default), and with their `--json`
    text if `json` (`CaptureExplanation.json_lines` then reads that, not the verdicts), and as nothing else
    unless `verdicts` (for `--json` alone: reading a spilled one as an `Explanation` then raises LookupError)."""
    name = os.fspath(path)
    total = 2 * capture_size(name)
    first = survey_file(name, None if progress is None else lambda done: progress(done, total))
    survey = first.survey
    try:
        with open_capture(name) as f:
            second = PacketReader(f, name, wanted=survey.wanted(), known=first.log)
            if progress is not None:
                second.frames.on_chunk = lambda done: progress(total // 2 + done, total)
            explanations = _second_pass(survey, frozenset(local_addresses), second,
                                        store=Explanations(spill_after, SCAN_PORTS, segments,
                                                           (survey.t0 or 0.0) if json else None, verdicts or not json))
    finally:
        first.close()
    if progress is not None:
        progress(total, total)
    return _explained(first, explanations)


def explain_surveyed(first: Surveyed, local_addresses: Iterable[str], packets: Numbered,
                     paths: Mapping[int, RstPath] | None = None) -> CaptureExplanation:
    """Explain a file from its first pass and the packets of (at least) its connections worth explaining,
    numbered as it numbered them; the verdicts are kept in memory. `paths`: see `explain_capture`."""
    return _explained(first, tuple(_second_pass(first.survey, frozenset(local_addresses), packets, paths)))


def _explained(first: Surveyed, explanations: Sequence[Explanation]) -> CaptureExplanation:
    """A file's explanations, with what its first pass counted."""
    survey = first.survey
    return CaptureExplanation(first.name, survey.packets, first.other, first.truncated, survey.connections,
                              survey.t0 or 0.0, survey.end_time(), explanations, tuple(capture_notes(survey)))


def explain_capture(capture: Capture, local_addresses: Iterable[str] = (),
                    paths: Mapping[int, RstPath] | None = None) -> CaptureExplanation:
    """Explain one capture already in memory.

    `local_addresses` are addresses the capture host is known to own (optional):
    a RST the capture host sent with another address as its source is forged.
    `paths` (RST packet index -> its path across capture points, `paths.rst_paths`)
    decides where a RST came from when other captures of the connection show it.
    """
    survey = _survey(capture.packets, capture.icmp)
    explanations = _second_pass(survey, frozenset(local_addresses), _numbered(capture.packets), paths)
    return CaptureExplanation(capture.path, len(capture.packets), capture.other, capture.truncated,
                              survey.connections, survey.t0 or 0.0, survey.end_time(), tuple(explanations),
                              tuple(capture_notes(survey)))


def explain_packets(packets: Sequence[Packet], t0: float | None = None,
                    local_addresses: Iterable[str] = ()) -> list[Explanation]:
    """Explain a sequence of packets (in capture order)."""
    survey = _survey(packets, ())
    if t0 is not None:
        survey.t0 = t0
    return list(_second_pass(survey, frozenset(local_addresses), _numbered(packets)))


def _numbered(packets: Iterable[Packet]) -> Iterator[tuple[int, Packet]]:
    """Packets in memory with their connection numbers (a file's reader gives them itself)."""
    segment = ConnectionTracker().segment
    for p in packets:
        yield segment(p.src, p.sport, p.dst, p.dport, p.bits, p.seq, p.ack)[0], p


def _survey(packets: Sequence[Packet], icmp: Sequence[IcmpError]) -> Survey:
    survey = Survey()
    survey.take(_numbered(packets))
    survey.icmp = tuple(icmp)
    if survey.twin_ends():
        _mark_opened(survey, _numbered(packets))
    return survey


def _mark_opened(survey: Survey, packets: Numbered) -> None:
    """A pass only for captures with a RST on a connection never seen opened: mark the
    connections its sender opened itself (their first packet is its SYN)."""
    ends = survey.twin_ends()
    seen = -1
    for conn, p in packets:
        if conn > seen:
            seen = conn
            if p.is_first_syn and (p.src, p.sport) in ends:
                survey.mark_opened(conn)


def capture_notes(survey: Survey) -> list[str]:
    """What kind of capture this is, where that changes what can be concluded."""
    notes: list[str] = []
    if survey.connections >= ONE_SIDED_MIN and not survey.any_both_ways():
        syns = sum(1 for c in range(survey.connections) if survey.only_syns(c))
        notes.append("one-sided capture: no connection has a packet in the other direction, so the "
                     "answers were not recorded" + (f"; the {syns} unanswered SYNs are not called "
                                                    "dropped" if syns else ""))
    if survey.copies:
        notes.append(f"{survey.copies} copies of frames seen twice were folded (forwarded in and out, or a "
                     "mirror port duplicating them)")
    if survey.backwards:
        n = survey.backwards
        notes.append(f"timestamps go backwards {n} time{'s' if n > 1 else ''} (first "
                     f"after packet {survey.first_backwards}): packets are taken in file order")
    t0 = survey.t0 or 0.0
    for err in survey.icmp[:3]:
        notes.append(f"ICMP {err.kind} from {err.sender} at {err.time - t0:.6f} about "
                     f"{endpoint(err.src, err.sport)} > {endpoint(err.dst, err.dport)}")
    if len(survey.icmp) > 3:
        notes.append(f"{len(survey.icmp) - 3} more ICMP errors about TCP segments")
    return notes


def _second_pass(survey: Survey, local: frozenset[str], packets: Numbered,
                 paths: Mapping[int, RstPath] | None = None, store: Explanations | None = None) -> Explanations:
    """Keep the packets of the connections worth explaining; as each one ends, find its facts;
    classify a reset once every reset that could change its verdict is known. The verdicts go to
    `store` (by default one that keeps them all in memory), sealed in order at the end."""
    out = Explanations(spill_after=sys.maxsize) if store is None else store
    ctx = Context(survey, local)
    wanted = survey.wanted()
    last_index = survey.last_index
    survey.finish()
    in_order = survey.backwards == 0       # else nothing is classified before the end
    no_copies = in_order and survey.copies == 0    # then no connection has a copy to fold either
    margin = max(BATCH_WINDOW, PAIR_WINDOW)   # the farthest another reset's time can reach
    buffers: dict[int, Connection] = {}
    open_resets: dict[int, float] = {}    # connection -> time of its first RST, until it ends
    waiting: list[Facts] = []
    countdown = CHECK_EVERY
    for conn, p in packets:
        if not wanted[conn]:
            continue
        c = buffers.get(conn)
        if c is None:
            c = buffers[conn] = Connection([], conn)
            c.no_copies = no_copies
            if survey.opened_by_twin(conn):
                ctx.opened.setdefault((p.src, p.sport), []).append(c)
                c.pins = list(survey.twin_times((p.src, p.sport)))
        if c.folder is None and not p.is_rst:
            c.raw.append(p)
        else:
            c.arrive(p)
            if conn not in open_resets and p.is_rst:
                open_resets[conn] = p.time
        if len(c.raw) >= c.cut_at and not c.held:
            c.elide(not survey.explained(conn))     # a long connection: its middle is let go
        if p.index == last_index[conn]:
            del buffers[conn]
            open_resets.pop(conn, None)
            found = [facts_of(part) for part in parts(c)] if survey.explained(conn) else [stray_facts(c)]
            for f in found:
                if f is not None:
                    ctx.note_reset(f)
                    waiting.append(f)
        countdown -= 1
        if not countdown and in_order:
            countdown = CHECK_EVERY
            horizon = min(p.time, min(open_resets.values(), default=p.time)) - margin
            waiting = _classify_before(waiting, horizon, ctx, out, paths or {})
            ctx.forget_aborts_before(horizon - margin)
            oldest = min(p.time, _oldest_start(buffers), min((f.conn.pk[0].time for f in waiting), default=p.time))
            ctx.forget_before(oldest - margin)     # no verdict still to come looks before its own connection
    _classify_before(waiting, float("inf"), ctx, out, paths or {})
    return out.seal()


def _oldest_start(buffers: dict[int, Connection]) -> float:
    """The time the oldest connection still open began (the buffers are in order of first packet)."""
    for c in buffers.values():
        return c.raw[0].time
    return float("inf")


def _classify_before(waiting: list[Facts], limit: float, ctx: Context, out: Explanations,
                     paths: Mapping[int, RstPath]) -> list[Facts]:
    """Classify the waiting resets whose RST came before `limit`; return the others."""
    later: list[Facts] = []
    for f in waiting:
        if f.rst.time >= limit:
            later.append(f)
            continue
        path = paths.get(f.rst.index) if f.rst.is_rst else None
        if f.rst.is_rst:
            f.forged = forged_evidence(f, ctx)
            f.by_endpoint = "" if f.forged else sent_by_endpoint(f, ctx)
            if path is not None:
                on_path(f, path)
        e = classify(f, ctx)
        if e is not None:
            out.add(f.conn.number, e if path is None else replace(e, path=path))
    return later


def classify(f: Facts, ctx: Context) -> Explanation | None:
    """The first cause that proves its case, else the causes that fit, else `unknown`."""
    fits: list[Finding] = []
    for cause in BY_FAMILY.get(f.family, ()):
        found = cause.check(f, ctx)
        if found is None:
            continue
        if found.decided:
            cands = [] if found.cause == UNKNOWN else [found]
            return explanation(f, ctx, found.cause, found.sentence, cands, found.evidence, found.notes)
        fits.append(found)
    if f.family in ("unanswered", "half-open", "out-of-window"):
        return None
    if not fits:
        return _unknown(f, ctx)
    fits.sort(key=lambda c: c.rank)
    evidence = [e for c in fits for e in c.evidence]
    notes = [n for c in fits for n in c.notes]
    if len(fits) == 1:            # every other cause of the family is ruled out
        only = fits[0]
        return explanation(f, ctx, only.cause, only.sentence, fits, evidence, notes)
    sentence, more = ambiguous_sentence(f, fits, CLAUSES.get(f.family, ()))
    note = uncomparable(f, ctx)
    return explanation(f, ctx, AMBIGUOUS, sentence, fits, evidence, notes + more + ([note] if note else []))


def _unknown(f: Facts, ctx: Context) -> Explanation:
    x = f.x_text
    evidence: list[tuple[Packet | None, str]] = [(p, "before the reset") for p in f.before[-3:]]
    evidence.append((f.rst, f"the first RST, from {x}"))
    if f.family == "lonely":
        sentence = repeated_resets(f) or (f"The capture holds only the RST from {x} for this connection (it began before the "
                    "capture did, or its packets were lost), so there is nothing to tell its cause by.")
    else:
        sentence = f"{x} sent a RST ({f.rst.flags}) that fits none of the known causes: see the packets before it."
    return explanation(f, ctx, UNKNOWN, sentence, [], evidence, [])
