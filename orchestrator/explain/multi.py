"""`explain a.pcap b.pcap …`: several capture points of one path explained together.

Each file is explained as its own capture, with every RST's path across the
points (`paths.rst_paths`) deciding where it came from. Then the points agree
on each RST: one point may see what decides its cause (the sender's own
retransmissions, the proxy's two connections) while another, that saw only
part of it, lists that cause among its candidates or has none; those take the
deciding point's verdict, and say so. An unanswered SYN is followed too: where
it was last seen (`synpath`). `explain_points` takes captures in memory;
`explain_point_files` reads files a chunk at a time, as `analysis.explain_file`
does one, and says the same.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace

from ..capture import Capture, Packet, PacketReader, capture_size, open_capture
from .analysis import Surveyed, explain_capture, explain_surveyed, survey_file
from .correlate import Hosting, SegmentKey, hosting_of, segment_key
from .paths import Paths, Point, rst_paths
from .result import AMBIGUOUS, SILENT_DROP, UNKNOWN, CaptureExplanation, Explanation
from .survey import RESETS
from .synpath import follow_syns

__all__ = ["explain_point_files", "explain_points", "settle"]

PASSES = 4          # explain_point_files reads each file this many times


def explain_points(captures: Sequence[Capture], points: Sequence[Point]) -> tuple[Paths, list[CaptureExplanation]]:
    """Explain each capture (`points[i]` is `captures[i]`'s name, packets and its host's addresses) with
    the RSTs' paths, and let the points agree on each RST's cause."""
    paths = rst_paths(points)
    results = [explain_capture(c, p.addresses, paths.by_point[i]) for i, (c, p) in enumerate(zip(captures, points, strict=True))]
    return paths, follow_syns(settle(results, [p.name for p in points]), points)


def explain_point_files(files: Sequence[str], names: Sequence[str], addresses: Sequence[frozenset[str]],
                        progress: Callable[[int, int], None] | None = None) -> tuple[Paths, list[CaptureExplanation]]:
    """`explain_points` of capture files, each read a chunk at a time, four times, instead of whole: what is
    held is the packets of the connections worth explaining and of those that share a segment with one
    holding a RST (at any point), not every packet. Raises CaptureError for a file that is not a capture.

    1. Each file's survey and its frames' connection numbers (`analysis.survey_file`).
    2. The segments of every connection that holds a RST, and the sequence numbers of every connection of SYNs
       only (an unanswered SYN's), at any point.
    3. Each file whole again: its connections that share one of those segments, what its host did
       (`correlate.hosting_of`) and its SYNs with one of those numbers (`synpath`: where an unanswered SYN was
       last seen; the others, a SYN a connection, would be held for nothing).
    4. The packets of its connections worth explaining or sharing such a segment: a `Point` that
       `rst_paths` correlates as it would the whole file; each point is then explained from its survey.

    `progress(done, total)`: bytes of the four passes, then the paths and each point's explanation."""
    sizes = [capture_size(name) for name in files]
    reading = PASSES * sum(sizes) or 1
    steps = len(files) + 1
    total = reading + steps

    def shifted(base: int) -> Callable[[int], None] | None:
        return None if progress is None else lambda done: progress(base + done, total)

    done = 0
    firsts: list[Surveyed] = []
    try:
        for name, size in zip(files, sizes, strict=True):
            firsts.append(survey_file(name, shifted(done)))
            done += size
        rst_keys: set[SegmentKey] = set()
        isns: set[int] = set()
        for first, size in zip(firsts, sizes, strict=True):
            followed = first.survey.followed()
            for conn, p in _read(first, followed, shifted(done), relative=False):
                if followed[conn] == RESETS:
                    rst_keys.add(segment_key(p))
                else:
                    isns.add(p.seq)
            done += size
        hosts: list[Hosting] = []
        syns: list[list[Packet]] = []
        wanted: list[bytearray] = []
        for first, own, size in zip(firsts, addresses, sizes, strict=True):
            shares = first.survey.wanted()          # worth explaining, or (marked as read) sharing a RST's segment
            syns.append([])
            every = _read(first, None, shifted(done), relative=False)
            hosts.append(hosting_of(_sharing(every, rst_keys, shares, isns, syns[-1]), own, rst_keys))
            wanted.append(shares)
            done += size
        kept: list[list[tuple[int, Packet]]] = []
        for first, mask, size in zip(firsts, wanted, sizes, strict=True):
            kept.append(list(_read(first, mask, shifted(done))))
            done += size
    finally:
        for first in firsts:
            first.close()
    del rst_keys, isns
    points = [Point(name, [p for _, p in packets], own) for name, packets, own in zip(names, kept, addresses, strict=True)]
    paths = rst_paths(points, hosts)
    if progress is not None:
        progress(reading + 1, total)
    results: list[CaptureExplanation] = []
    for i, (first, own) in enumerate(zip(firsts, addresses, strict=True)):
        results.append(explain_surveyed(first, own, kept[i], paths.by_point[i]))
        kept[i] = []
        if progress is not None:
            progress(reading + i + 2, total)
    return paths, follow_syns(settle(results, names), points, hosts, syns)


def _read(first: Surveyed, wanted: bytearray | None, progress: Callable[[int], None] | None,
          relative: bool = True) -> Iterator[tuple[int, Packet]]:
    """The file's packets of the `wanted` connections (all with None), numbered as its survey numbered them
    (`relative` False: without relative numbers, for what is matched by the numbers on the wire)."""
    with open_capture(first.name) as f:
        reader = PacketReader(f, first.name, wanted=wanted, known=first.log, relative=relative)
        if progress is not None:
            reader.frames.on_chunk = progress
        yield from reader


def _sharing(packets: Iterator[tuple[int, Packet]], keys: set[SegmentKey], shares: bytearray, isns: set[int],
             syns: list[Packet]) -> Iterator[Packet]:
    """The packets, passed on; marks in `shares` the connections with a segment in `keys`, and keeps in `syns`
    the SYNs without ACK whose sequence number is in `isns`."""
    for conn, p in packets:
        if not shares[conn] and segment_key(p) in keys:
            shares[conn] = 1
        if p.is_syn and not p.has_ack and p.seq in isns:
            syns.append(p)
        yield p


def settle(results: Sequence[CaptureExplanation], names: Sequence[str]) -> list[CaptureExplanation]:
    """Where one point decides a RST's cause and another lists it among its candidates (or has no cause
    for it), the other takes it, with a note naming the point that decided."""
    sightings: dict[int, list[tuple[int, int]]] = {}
    for i, r in enumerate(results):
        for j, e in enumerate(r.explanations):
            if e.path is not None:
                sightings.setdefault(id(e.path), []).append((i, j))
    out = [list(r.explanations) for r in results]
    for members in sightings.values():
        decided = [(i, results[i].explanations[j]) for i, j in members
                   if results[i].explanations[j].cause not in (AMBIGUOUS, UNKNOWN, SILENT_DROP)]
        if len({e.cause for _, e in decided}) != 1:
            continue
        by, verdict = decided[0]
        for i, j in members:
            e = results[i].explanations[j]
            if e.cause == UNKNOWN or (e.cause == AMBIGUOUS and verdict.cause in (c.cause for c in e.candidates)):
                out[i][j] = _adopt(e, verdict, names[by])
    return [replace(r, explanations=tuple(out[i])) for i, r in enumerate(results)]


def _adopt(e: Explanation, verdict: Explanation, by: str) -> Explanation:
    alone = " or ".join(c.cause for c in e.candidates) or "no known cause"
    chosen = tuple(c for c in e.candidates if c.cause == verdict.cause) or verdict.candidates
    return replace(e, cause=verdict.cause, sentence=verdict.sentence, candidates=chosen,
                   notes=(*e.notes, f"this capture alone fits {alone}; {by}'s capture of the same connection "
                                    f"decides it (see {by})"))
