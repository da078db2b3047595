"""Other people's captures (../shared/pcaps/wild/, no answers given): every file is read and
explained without an error, and the reader agrees with tshark on every TCP packet and RST."""
from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.capture import read_capture
from orchestrator.explain import explain_capture
from tests import oracles
from tests.conftest import ROOT

WILD = ROOT.parent / "shared" / "pcaps" / "wild"
FILES = sorted(p.name for p in WILD.glob("w*")) if WILD.is_dir() else []


def test_the_wild_captures_are_there() -> None:
    assert len(FILES) == 25, f"expected the 25 public captures in {WILD}"


def _tshark_count(path: Path, display_filter: str) -> int:
    """tshark installed here, or in the tools container (tests/oracles.py)."""
    return oracles.tshark(["-r", str(path), "-Y", display_filter, "-T", "fields", "-e", "frame.number"], path).count("\n")


@pytest.mark.parametrize("name", FILES)
def test_every_wild_capture_is_read_as_tshark_reads_it_and_explained(name: str) -> None:
    path = WILD / name
    cap = read_capture(path)
    # TCP quoted inside ICMP errors is reported apart, never counted as a packet or a RST
    assert len(cap.packets) == _tshark_count(path, "tcp && !icmp && !icmpv6")
    assert sum(p.is_rst for p in cap.packets) == _tshark_count(path, "tcp.flags.reset==1 && !icmp && !icmpv6")
    result = explain_capture(cap)
    assert result.packets == len(cap.packets)
    for e in result.explanations:
        assert e.sentence and e.evidence


def test_late_data_that_also_acknowledges_the_fin_is_named_for_the_data() -> None:
    """w14: the server's 31 bytes after the client's FIN also acknowledge it; the evidence names the data."""
    (e,) = explain_capture(read_capture(WILD / "w14.pcap")).explanations
    assert e.cause == "data-after-close"
    labels = [ev.why for ev in e.evidence]
    assert any("keeps sending after the FIN (the same segment acknowledges it)" in why for why in labels), labels
    assert not any(why.endswith("acknowledges the FIN") for why in labels), labels


def test_rsts_alone_are_not_said_to_answer_segments() -> None:
    """w25: 1,333 RSTs on one four-tuple and nothing else: no segment for them to answer is in the capture."""
    (e,) = explain_capture(read_capture(WILD / "w25.pcap")).explanations
    assert e.resets == 1333 and e.packets == 1333
    assert "1332 more RSTs followed the first, and the capture holds nothing else of this connection" in e.notes
    assert not any("still on their way" in n for n in e.notes)
