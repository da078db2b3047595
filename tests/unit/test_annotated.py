"""The annotated pcapng: every capture point merged, named interfaces, comments tshark reads (no Docker)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator import catalog
from orchestrator.capture import parse_capture_bytes, read_capture
from orchestrator.report.annotated import annotated_capture
from orchestrator.report.ladder import kernel_reasons
from tests import oracles
from tests.conftest import ROOT

REFERENCE = ROOT / "captures" / "reference"
FOLDERS = sorted(p.parent for p in REFERENCE.glob("*/result.json"))


def tshark(path: Path, *fields: str) -> list[list[str]]:
    """tshark installed here, or in the tools container (tests/oracles.py)."""
    out = oracles.tshark(["-r", str(path), "-T", "fields", "-E", "separator=\t",
                          *(a for f in fields for a in ("-e", f))], path)
    return [line.split("\t") for line in out.splitlines()]


def merged(folder: Path, tmp_path: Path) -> tuple[Path, dict]:
    doc = json.loads((folder / "result.json").read_text())
    names = {h["address"]: name for name, h in doc["hosts"].items()}
    pcaps = {p: (folder / f"{p}.pcap").read_bytes() for p in doc["capture_points"]}
    scenarios = {s.id: s for s in catalog.builtin_scenarios(catalog.load_topology())}
    path = tmp_path / f"{folder.name}.pcapng"
    path.write_bytes(annotated_capture(pcaps, names, scenarios.get(folder.name), kernel_reasons(doc)))
    return path, doc


@pytest.mark.parametrize("folder", FOLDERS, ids=[f.name for f in FOLDERS])
def test_every_scenario_merges_into_one_commented_pcapng_tshark_reads(folder: Path, tmp_path: Path) -> None:
    path, doc = merged(folder, tmp_path)
    rows = tshark(path, "frame.interface_name", "tcp.flags.reset", "frame.comment")
    per_point = {p: len(read_capture(folder / f"{p}.pcap").packets) for p in doc["capture_points"]}
    assert len(rows) >= sum(per_point.values()), "every frame of every point is in the merged file"
    assert {r[0] for r in rows} <= set(doc["capture_points"]), "one named interface per capture point"
    for point, count in per_point.items():
        assert sum(1 for r in rows if r[0] == point and r[1]) == count, f"{point}: its TCP frames, all of them"
    for name, reset, comment in ([*r, "", ""][:3] for r in rows):
        if reset in ("1", "True"):
            assert comment.startswith("RST "), f"{name}: a RST without its comment"
    # our own reader agrees: the merged file is in time order across points
    times = [p.time for p in parse_capture_bytes(path.read_bytes(), path.name).packets]
    assert times == sorted(times)


def test_firewall_reset_comments_say_where_the_rst_was_made_and_which_checks_matched(tmp_path: Path) -> None:
    path, _ = merged(REFERENCE / "firewall-reset", tmp_path)
    rows = tshark(path, "frame.interface_name", "tcp.flags.str", "frame.comment")
    at_router = [r for r in rows if r[0] == "router"]
    at_client = [r for r in rows if r[0] == "client"]
    assert "check packets @router #1: client > server S dir=in" in at_router[0][2]
    rst = next(r for r in at_client if "R" in r[1])
    assert "explain: firewall-reset" in rst[2] and "(decided at router)" in rst[2], rst
    assert "check packets @client #2" in rst[2]
