"""explain scored against the kernel: every reset connection in the catalogue's captures, explain's cause vs the
kernel's reason for the RST explain's verdict is about (the connection's first).

The kernel witness says why each RST was sent (tcp:tcp_send_reset's reason), or
that no host's TCP sent it (forged on the path). `EXPLAIN_CAUSES_BY_REASON`
(orchestrator/witness.py, README "The kernel's word") says which explain causes
each reason allows; an ambiguous verdict agrees when one of its candidates is
allowed (the kernel then decides between them). Any disagreement fails.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from orchestrator.capture import read_capture
from orchestrator.explain import endpoint, explain_capture
from orchestrator.explain.multi import explain_points
from orchestrator.explain.paths import Point
from orchestrator.witness import (
    FORGED,
    event_from_record,
    explain_agrees,
    witness_packets,
)
from tests.integration.test_catalogue import SCENARIOS


@dataclass(frozen=True)
class Scored:
    where: str          # scenario, capture point, packet number
    kernel: str         # the kernel's reason, or FORGED
    explain: str        # explain's cause (and its candidates when ambiguous)
    agrees: bool


def score(out: Path, scenarios: list[str], together: bool = False) -> tuple[list[Scored], int]:
    """The RST each explained connection's verdict is about (its first), in every capture of a run's output
    folder, scored; and how many later RSTs of the same connections there were (explain gives them no
    cause of their own: they follow from the first). `together`: each scenario's capture points are
    explained at once (`explain client.pcap router.pcap server.pcap`), each RST followed along the path."""
    scored = []
    later = 0
    for scenario in scenarios:
        doc = json.loads((out / scenario / "result.json").read_text())
        witness = doc["kernel_witness"]
        if not witness["watched"]:
            why = f"{scenario}: the kernel was not watched ({witness['why_not']})"
            if os.environ.get("CI"):
                pytest.fail(why)
            pytest.skip(why)
        events = [event_from_record(r) for r in witness["events"]]
        hosts = {h: v["address"] for h, v in doc["hosts"].items()}
        captures = {point: read_capture(out / scenario / cap["file"]) for point, cap in doc["captures"].items()}
        if together:
            _, reports = explain_points(list(captures.values()), [Point(point, c.packets, frozenset([hosts[point]]))
                                                                  for point, c in captures.items()])
        else:
            reports = [explain_capture(c, [hosts[point]]) for point, c in captures.items()]
        for (point, capture), report in zip(captures.items(), reports, strict=True):
            words = witness_packets(capture.packets, events, hosts)
            decided: set[int] = set()
            for e in report.explanations:
                if e.rst_time is None:
                    continue
                first = next((p for p in capture.packets if p.is_rst and abs(p.time - e.rst_time) < 1e-6
                              and endpoint(p.src, p.sport) == e.rst_from), None)
                where = f"{scenario} @ {point} {e.rst_from}"
                if first is None or first.index not in words:
                    scored.append(Scored(where, "(no RST found for explain's)", e.cause, False))
                    continue
                decided.add(first.index)
                word = words[first.index]
                candidates = [c.cause for c in e.candidates]
                said = e.cause + (f" {candidates}" if e.cause == "ambiguous" else "")
                scored.append(Scored(f"{where} #{first.index + 1}", word.reason or FORGED, said,
                                     explain_agrees(word.reason, e.cause, candidates)))
            later += len(set(words) - decided)
    return scored, later


def test_explain_agrees_with_the_kernel_on_every_rst(catalogue_run: tuple[int, Path, str],
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = catalogue_run
    scored, later = score(out, SCENARIOS)
    agree = sum(1 for s in scored if s.agrees)
    with capsys.disabled():
        decided = sum(1 for s in scored if s.agrees and s.explain.startswith("ambiguous"))
        print(f"\nexplain vs the kernel: {agree} of {len(scored)} RSTs agree ({decided} of them ambiguous on the "
              "wire alone, where the kernel's reason decides between explain's candidates); "
              f"{later} later RSTs of the same connections follow from those")
        for s in scored:
            if not s.agrees:
                print(f"  DISAGREE {s.where}: kernel {s.kernel}, explain {s.explain}")
    assert scored, "the catalogue's captures hold RSTs"
    assert agree == len(scored), [s for s in scored if not s.agrees]


def test_explained_together_the_capture_points_agree_with_the_kernel(catalogue_run: tuple[int, Path, str]) -> None:
    """The same, with every capture point of a scenario given at once: where the points show a RST's origin,
    that decides (closed-port and firewall-reset are no longer ambiguous), and it still agrees."""
    _, out, _ = catalogue_run
    scored, _ = score(out, SCENARIOS, together=True)
    assert scored and all(s.agrees for s in scored), [s for s in scored if not s.agrees]
    undecided = [s for s in scored if s.where.startswith(("closed-port ", "firewall-reset "))
                 and s.explain.startswith("ambiguous")]
    assert not undecided, undecided
