"""`explain a.pcap b.pcap …`: several capture points of one path explained together.

Each file is explained as its own capture, with every RST's path across the
points (`paths.rst_paths`) deciding where it came from. Then the points agree
on each RST: one point may see what decides its cause (the sender's own
retransmissions, the proxy's two connections) while another, that saw only
part of it, lists that cause among its candidates or has none; those take the
deciding point's verdict, and say so. An unanswered SYN is followed too: where
it was last seen (`synpath`). Pure: captures in, explanations out.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from ..capture import Capture
from .analysis import explain_capture
from .paths import Paths, Point, rst_paths
from .result import AMBIGUOUS, SILENT_DROP, UNKNOWN, CaptureExplanation, Explanation
from .synpath import follow_syns

__all__ = ["explain_points", "settle"]


def explain_points(captures: Sequence[Capture], points: Sequence[Point],
                   progress: Callable[[int, int], None] | None = None) -> tuple[Paths, list[CaptureExplanation]]:
    """Explain each capture (`points[i]` is `captures[i]`'s name, packets and its host's addresses) with
    the RSTs' paths, and let the points agree on each RST's cause. `progress(done, steps)`: each step done
    (the paths, then each point's explanation), for a progress display."""
    steps = len(points) + 1
    paths = rst_paths(points)
    if progress is not None:
        progress(1, steps)
    results: list[CaptureExplanation] = []
    for i, (c, p) in enumerate(zip(captures, points, strict=True)):
        results.append(explain_capture(c, p.addresses, paths.by_point[i]))
        if progress is not None:
            progress(i + 2, steps)
    return paths, follow_syns(settle(results, [p.name for p in points]), points)


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
