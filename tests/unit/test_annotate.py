"""`explain --annotate OUT.pcapng`: every frame copied, a comment on each explained RST that
tshark (the oracle) reads back as frame.comment."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from orchestrator.capture import read_capture
from orchestrator.explain import explain_file
from orchestrator.report.annotate import annotate
from tests import oracles
from tests.conftest import ROOT, WILD

FIXTURES = ROOT / "tests" / "fixtures" / "explain"


def _tshark(path: Path, *args: str) -> str:
    """tshark installed here, or in the tools container (tests/oracles.py)."""
    return oracles.tshark(["-r", str(path), *args], path)


def test_the_rst_carries_its_cause_as_a_packet_comment(tmp_path: Path) -> None:
    src = FIXTURES / "firewall-reset-established_client.pcap"
    out = tmp_path / "annotated.pcapng"
    assert annotate(explain_file(str(src)), str(src), out) == 1
    rows = [line.split("\t") for line in _tshark(out, "-Y", "frame.comment", "-T", "fields", "-e", "frame.number",
                                                 "-e", "tcp.flags.reset", "-e", "frame.comment").splitlines()]
    assert len(rows) == 1
    number, reset, comment = rows[0]
    assert reset in ("1", "True") and comment.startswith("RST Lab: firewall-reset: ") and "TTL 64" in comment
    before, after = read_capture(src).packets, read_capture(out).packets
    assert [(p.time, p.flags, p.seq, p.ttl) for p in before] == [(p.time, p.flags, p.seq, p.ttl) for p in after]
    assert int(number) == before[-1].frame


def test_an_fddi_capture_keeps_its_link_type(tmp_path: Path) -> None:
    src = WILD / "w25.pcap"
    out = tmp_path / "w25.pcapng"
    annotate(explain_file(str(src)), str(src), out)
    assert read_capture(out).linktype == 10 and len(read_capture(out).packets) == 1333


def test_cli_annotate_needs_one_file(tmp_path: Path) -> None:
    one = str(FIXTURES / "closed-port_client.pcap")
    proc = subprocess.run([sys.executable, "-m", "orchestrator", "explain", "--annotate", str(tmp_path / "x.pcapng"),
                           one, one], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--annotate takes one capture file" in proc.stderr
    ok = subprocess.run([sys.executable, "-m", "orchestrator", "explain", "--annotate", str(tmp_path / "y.pcapng"),
                         one], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and "1 packet comment written" in ok.stderr and (tmp_path / "y.pcapng").exists()
