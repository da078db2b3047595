"""bench/stress.py's tally: passes, first failed checks and capture integrity from run folders."""
from __future__ import annotations

import importlib.util
import json
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("stress", ROOT / "bench" / "stress.py")
assert spec is not None and spec.loader is not None
stress = importlib.util.module_from_spec(spec)
spec.loader.exec_module(stress)


def write_run(out: Path, scenarios: list[dict[str, Any]]) -> None:
    out.mkdir(parents=True)
    summary = {"passed": sum(s["verdict"] == "passed" for s in scenarios), "total": len(scenarios),
               "scenarios": [{"id": s["id"], "verdict": s["verdict"], "error": s.get("error")} for s in scenarios]}
    (out / "summary.json").write_text(json.dumps(summary))
    for s in scenarios:
        (out / s["id"]).mkdir()
        (out / s["id"] / "result.json").write_text(json.dumps(s))


def done(rc: int = 0, stderr: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.CompletedProcess(["x"], rc, "", stderr)


def test_tally_counts_first_failures_and_lossy_captures(tmp_path: Path) -> None:
    ok = {"id": "closed-port", "verdict": "passed", "error": None, "checks": [],
          "captures": {"client": {"captured": 2, "received": 2, "dropped": 0}}}
    bad = {"id": "silent-drop", "verdict": "failed", "error": None,
           "checks": [{"kind": "packets", "subject": "client", "expected": "4 SYNs", "observed": "5 SYNs",
                       "passed": False},
                      {"kind": "app", "subject": "client", "expected": "x", "observed": "y", "passed": False}],
           "captures": {"client": {"captured": 4, "received": 5, "dropped": 0}}}
    write_run(tmp_path / "a", [ok, bad])
    write_run(tmp_path / "b", [ok, {**bad, "verdict": "passed", "checks": [],
                                     "captures": {"client": {"captured": 4, "received": 4, "dropped": 0}}}])
    tally = stress.Tally()
    assert tally.add_run("round 1 run 1", tmp_path / "a", done(1)) == "round 1 run 1: 1/2 passed"
    tally.add_run("round 1 run 2", tmp_path / "b", done())
    assert (tally.passes["closed-port"], tally.fails["closed-port"]) == (2, 0)
    assert (tally.passes["silent-drop"], tally.fails["silent-drop"]) == (1, 1)
    assert tally.failures["silent-drop"] == [
        "round 1 run 1: packets @ client: expected 4 SYNs; observed 5 SYNs"]   # the first failed check only
    assert tally.captures["received"] == 13 and tally.captures["captured"] == 12
    assert tally.lossy == ["round 1 run 1 silent-drop@client: 4 captured, 5 received, 0 dropped"]
    report = tally.report()
    assert "1 capture(s) lost packets" in report and "silent-drop" in report


def test_a_run_that_did_not_finish_is_reported(tmp_path: Path) -> None:
    tally = stress.Tally()
    line = tally.add_run("round 2 run 1", tmp_path / "none", done(3, "error: no Docker engine reachable\n"))
    assert "did not finish (exit 3): error: no Docker engine reachable" in line
    assert tally.broken_runs and "runs that did not finish: 1" in tally.report()


def test_command_runs_all_or_the_named_scenarios(tmp_path: Path) -> None:
    assert stress._command(tmp_path, [], 16)[-5:] == ["all", "--out", str(tmp_path), "--jobs", "16"]
    assert stress._command(tmp_path, ["a", "b"], None)[-5:] == ["run", "a", "b", "--out", str(tmp_path)]
