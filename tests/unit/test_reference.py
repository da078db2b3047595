"""The committed reference run (captures/reference/) still fits the scenarios, re-checked without Docker.

Each scenario folder's pcaps are parsed again with `read_capture` and checked
against the scenario file's expectations with `verify`, the applications'
events and the kernel counters taken from its result.json. So a scenario that
changes without the reference being regenerated fails here, and so does a
reference that lost a scenario. Regenerate it with:

    rm -rf captures/reference && python -m orchestrator all --out captures/reference

Until a reference run is committed (no captures/reference/summary.json) there is nothing to check.
"""
from __future__ import annotations

import json
import socket
import struct
from pathlib import Path
from typing import Any

import pytest

from orchestrator import catalog
from orchestrator.capture import read_capture
from orchestrator.model import Scenario
from orchestrator.verify import Check, check_capture_integrity, check_scenario
from tests.conftest import ROOT

REFERENCE = ROOT / "captures" / "reference"
REGENERATE = "rm -rf captures/reference && python -m orchestrator all --out captures/reference"


def catalogue() -> dict[str, Scenario]:
    return {s.id: s for s in catalog.builtin_scenarios(catalog.load_topology())}


def scenario_folders(root: Path = REFERENCE) -> list[Path]:
    return sorted(p.parent for p in root.glob("*/result.json")) if root.is_dir() else []


def recheck(folder: Path, scenario: Scenario) -> list[Check]:
    """Every check of `scenario` on the files in `folder`: the pcaps re-parsed, events and counters from result.json."""
    doc: dict[str, Any] = json.loads((folder / "result.json").read_text())
    names = {h["address"]: host for host, h in doc["hosts"].items()}
    packets = {}
    checks = []
    for point in scenario.capture:
        path = folder / f"{point}.pcap"
        assert path.is_file(), f"{path} is missing"
        # as the runner does: frames the bridge flooded to this host never reached its TCP
        packets[point] = [p for p in read_capture(path).packets if p.direction != "other"]
        stats = doc["captures"][point]
        checks.append(check_capture_integrity(point, stats["captured"], stats["received"], stats["dropped"]))
    witness = doc["kernel_witness"]
    reasons = witness["reasons"] if witness["watched"] else None   # the reference run was witnessed: re-check them too
    checks += check_scenario(scenario, packets, names, doc["events"], doc["counters"], reasons, witness["why_not"] or "")
    return checks


def assert_files_fit(folder: Path, scenario: Scenario) -> None:
    doc = json.loads((folder / "result.json").read_text())
    failed = [c for c in recheck(folder, scenario) if not c.passed]
    assert not failed, (f"{folder.name}: the committed captures no longer fit the scenario; regenerate with "
                        f"`{REGENERATE}`\n" + "\n".join(f"{c.kind} @ {c.subject}: expected {c.expected}; "
                                                        f"observed {c.observed}" for c in failed))
    # result.json says what the pcaps hold
    for point in scenario.capture:
        parsed = [p for p in read_capture(folder / f"{point}.pcap").packets if p.direction != "other"]
        recorded = doc["packets"][point]
        assert [p.flags for p in parsed] == [p["flags"] for p in recorded], f"{folder.name}/{point}: result.json"
    assert doc["verdict"] == "passed", f"{folder.name}: the reference run did not pass"
    page = (folder / "README.md").read_text()
    assert "```mermaid" in page and "sequenceDiagram" in page


def test_reference_has_every_scenario() -> None:
    summary = REFERENCE / "summary.json"
    if not summary.exists():
        pytest.skip(f"no reference run committed yet (make it with `{REGENERATE}`)")
    present = {p.name for p in scenario_folders()}
    missing = sorted(set(catalogue()) - present)
    assert not missing, f"captures/reference lacks {', '.join(missing)}: regenerate with `{REGENERATE}`"
    listed = {s["id"] for s in json.loads(summary.read_text())["scenarios"]}
    assert listed == present, f"summary.json and the scenario folders differ: regenerate with `{REGENERATE}`"
    for name in ("index.md", "index.html", "junit.xml"):
        assert (REFERENCE / name).is_file(), f"captures/reference/{name} is missing"


@pytest.mark.parametrize("folder", scenario_folders(), ids=lambda p: p.name)
def test_reference_captures_fit_their_scenario(folder: Path) -> None:
    scenarios = catalogue()
    assert folder.name in scenarios, (f"captures/reference/{folder.name} is no scenario of the catalogue any more: "
                                      f"regenerate with `{REGENERATE}`")
    assert_files_fit(folder, scenarios[folder.name])


# --- the re-check itself, on hand-made captures (Linux cooked v2, as tcpdump -i any writes) --------------------------

CLIENT, SERVER = "10.213.9.10", "10.213.9.70"
OUTGOING, INCOMING = 4, 0


def segment(t: float, src: str, dst: str, sport: int, dport: int, flags: int, seq: int, ack: int,
            kind: int) -> tuple[float, bytes]:
    tcp = struct.pack(">HHIIHHHH", sport, dport, seq, ack, (5 << 12) | flags, 64240, 0, 0)
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0, 64, 6, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    sll2 = struct.pack(">HHIHBB8s", 0x0800, 0, 2, 1, kind, 6, bytes(8))
    return t, sll2 + ip + tcp


def write_pcap(path: Path, frames: list[tuple[float, bytes]]) -> None:
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 276)]
    for t, frame in frames:
        out.append(struct.pack("<IIII", int(t), round((t % 1) * 1e6), len(frame), len(frame)) + frame)
    path.write_bytes(b"".join(out))


def closed_port_files(folder: Path, answered: bool = True) -> Path:
    """What a run of closed-port leaves: a SYN and (if `answered`) its RST+ACK at client and server."""
    folder.mkdir(parents=True)
    t0 = 1_800_000_000.0
    syn, rst = (0x02, 1000, 0), (0x14, 0, 1001)
    for point, (out, inn) in {"client": (OUTGOING, INCOMING), "server": (INCOMING, OUTGOING)}.items():
        frames = [segment(t0, CLIENT, SERVER, 40000, 7, *syn, out)]
        if answered:
            frames.append(segment(t0 + 0.0001, SERVER, CLIENT, 7, 40000, *rst, inn))
        write_pcap(folder / f"{point}.pcap", frames)
    n = 2 if answered else 1
    doc = {
        "scenario": "closed-port", "verdict": "passed",
        "hosts": {"client": {"address": CLIENT}, "router": {"address": "10.213.9.200"}, "server": {"address": SERVER}},
        "captures": {p: {"captured": n, "received": n, "dropped": 0, "file": f"{p}.pcap"} for p in ("client", "server")},
        "events": [{"host": "client", "call": "connect", "sock": "c", "start": t0, "end": t0 + 0.0003, "ok": False,
                    "errno": "ECONNREFUSED" if answered else None, "result": None if answered else "poll-timeout",
                    "t": -0.0001}],
        "counters": {"client": {"TcpAttemptFails": 1, "TcpOutRsts": 0}, "server": {"TcpOutRsts": 1 if answered else 0}},
        "packets": {},
        "kernel_witness": {"watched": True, "why_not": None, "events": [],
                           "reasons": {"client": [], "router": [], "server": ["NO_SOCKET"] if answered else []}},
    }
    (folder / "result.json").write_text(json.dumps(doc))
    return folder


def test_recheck_of_files_that_fit(tmp_path: Path) -> None:
    checks = recheck(closed_port_files(tmp_path / "closed-port"), catalogue()["closed-port"])
    assert checks and all(c.passed for c in checks), [c for c in checks if not c.passed]
    kinds = {c.kind for c in checks}
    assert {"capture", "packets", "app", "counter", "reasons"} <= kinds


def test_recheck_catches_drift(tmp_path: Path) -> None:
    checks = recheck(closed_port_files(tmp_path / "closed-port", answered=False), catalogue()["closed-port"])
    failed = {(c.kind, c.subject) for c in checks if not c.passed}
    assert {("packets", "client"), ("packets", "server"), ("app", "client"), ("counter", "server"),
            ("reasons", "server")} <= failed


def test_a_missing_capture_is_reported(tmp_path: Path) -> None:
    folder = closed_port_files(tmp_path / "closed-port")
    (folder / "server.pcap").unlink()
    with pytest.raises(AssertionError, match=r"server\.pcap is missing"):
        recheck(folder, catalogue()["closed-port"])


def test_the_annotated_captures_say_what_explain_says_now(tmp_path: Path) -> None:
    """Each committed `<scenario>.pcapng` is what `report` writes from the committed pcaps and result.json: the
    packet comments carry what explain says of each RST, so a change of its wording or its verdicts fails here
    until `python -m orchestrator report captures/reference` writes them again (the pages too)."""
    import shutil

    from orchestrator.report.results_folder import write_report

    copy = tmp_path / "reference"
    shutil.copytree(REFERENCE, copy)
    write_report(copy)
    stale = [folder.name for folder in scenario_folders()
             if (copy / folder.name / f"{folder.name}.pcapng").read_bytes()
             != (folder / f"{folder.name}.pcapng").read_bytes()
             or (copy / folder.name / "README.md").read_text() != (folder / "README.md").read_text()]
    assert not stale, f"run `python -m orchestrator report captures/reference` and commit: {stale}"
