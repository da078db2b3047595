#!/usr/bin/env python3
"""Run the catalogue under load and count, per scenario, passes and failures (issue 20).

    python bench/stress.py --parallel 2 --rounds 10          # two `all` runs at once, ten rounds
    python bench/stress.py --jobs 16 --rounds 10             # one `all --jobs 16` (J well above the cores)
    python bench/stress.py --parallel 2 --rounds 3 silent-drop keepalive-timeout   # only these, N at once

A scenario that passes only on an idle machine has a race: this makes the
machine busy with the lab itself. Each round starts `--parallel` runs at once
and waits for all of them. At the end it prints, per scenario, passes and
failures with each failure's first failed check, and the capture integrity
under load: tcpdump's own counts (received by filter vs captured, dropped by
kernel) summed over every capture point of every run. `--json FILE` keeps the
figures for a report.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _command(out: Path, names: list[str], jobs: int | None) -> list[str]:
    cmd = [sys.executable, "-m", "orchestrator"]
    cmd += ["run", *names] if names else ["all"]
    cmd += ["--out", str(out)]
    if jobs:
        cmd += ["--jobs", str(jobs)]
    return cmd


def _first_failure(doc: dict[str, Any]) -> str:
    """The scenario's error, or its first failed check, in one line."""
    if doc.get("error"):
        return f"error: {doc['error']}"
    for c in doc.get("checks", []):
        if not c["passed"] and c.get("witnessed", True):   # a check that could not be made is no failure
            return f"{c['kind']} @ {c['subject']}: expected {c['expected']}; observed {c['observed']}"
    return "failed (no failed check recorded)"


class Tally:
    """Verdicts, first failed checks and capture counts over every run."""

    def __init__(self) -> None:
        self.order: list[str] = []
        self.passes: Counter[str] = Counter()
        self.fails: Counter[str] = Counter()
        self.failures: dict[str, list[str]] = defaultdict(list)
        self.captures = Counter[str]()
        self.lossy: list[str] = []
        self.broken_runs: list[str] = []
        self.durations: list[float] = []

    def add_run(self, label: str, out: Path, proc: subprocess.CompletedProcess[str]) -> str:
        summary_path = out / "summary.json"
        if not summary_path.exists():
            last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
            self.broken_runs.append(f"{label}: exit {proc.returncode}: {last}")
            return f"{label}: did not finish (exit {proc.returncode}): {last}"
        summary = json.loads(summary_path.read_text())
        for s in summary["scenarios"]:
            sid = s["id"]
            if sid not in self.order:
                self.order.append(sid)
            doc_path = out / sid / "result.json"
            doc = json.loads(doc_path.read_text()) if doc_path.exists() else {"error": s.get("error")}
            for point, st in (doc.get("captures") or {}).items():
                for key in ("captured", "received", "dropped"):
                    self.captures[key] += int(st.get(key) or 0)
                self.captures["points"] += 1
                if st.get("dropped") or st.get("captured") != st.get("received"):
                    self.lossy.append(f"{label} {sid}@{point}: {st.get('captured')} captured, "
                                      f"{st.get('received')} received, {st.get('dropped')} dropped")
            if s["verdict"] == "passed":
                self.passes[sid] += 1
            else:
                self.fails[sid] += 1
                self.failures[sid].append(f"{label}: {_first_failure(doc)}")
        return f"{label}: {summary['passed']}/{summary['total']} passed"

    def report(self) -> str:
        lines = [f"{'scenario':28} {'pass':>5} {'fail':>5}"]
        for sid in self.order:
            lines.append(f"{sid:28} {self.passes[sid]:5d} {self.fails[sid]:5d}")
            lines += [f"    {f}" for f in self.failures[sid]]
        total_pass, total_fail = sum(self.passes.values()), sum(self.fails.values())
        lines.append(f"{'total':28} {total_pass:5d} {total_fail:5d}")
        c = self.captures
        lines.append("")
        lines.append(f"capture integrity: {c['points']} capture points, {c['received']} packets received by "
                     f"filter, {c['captured']} captured, {c['dropped']} dropped by kernel; "
                     f"{len(self.lossy)} capture(s) lost packets")
        lines += [f"    {x}" for x in self.lossy]
        if self.broken_runs:
            lines.append(f"runs that did not finish: {len(self.broken_runs)}")
            lines += [f"    {x}" for x in self.broken_runs]
        if self.durations:
            lines.append(f"round wall time: min {min(self.durations):.1f} s, max {max(self.durations):.1f} s")
        return "\n".join(lines)

    def as_json(self) -> dict[str, Any]:
        return {"scenarios": {sid: {"passed": self.passes[sid], "failed": self.fails[sid],
                                    "failures": self.failures[sid]} for sid in self.order},
                "captures": dict(self.captures), "lossy_captures": self.lossy,
                "broken_runs": self.broken_runs, "round_seconds": self.durations}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenarios", nargs="*", metavar="NAME",
                        help="scenario ids to run (default: the whole catalogue, `all`)")
    parser.add_argument("--parallel", type=int, default=2, help="runs at once (default 2)")
    parser.add_argument("--rounds", type=int, default=10, help="rounds (default 10)")
    parser.add_argument("--jobs", type=int, default=None, help="--jobs for each run (default: the CLI's)")
    parser.add_argument("--json", type=Path, default=None, metavar="FILE", help="write the figures as JSON")
    args = parser.parse_args()
    if args.parallel < 1 or args.rounds < 1:
        parser.error("--parallel and --rounds must be at least 1")
    tally = Tally()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with tempfile.TemporaryDirectory(prefix="rstlab-stress-") as tmp:
        for r in range(args.rounds):
            t0 = time.monotonic()
            runs = []
            for p in range(args.parallel):
                out = Path(tmp) / f"r{r}p{p}"
                runs.append((f"round {r + 1} run {p + 1}", out, subprocess.Popen(
                    _command(out, args.scenarios, args.jobs), cwd=ROOT, env=env, text=True,
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)))
            for label, out, popen in runs:
                stdout, stderr = popen.communicate()
                done = subprocess.CompletedProcess(popen.args, popen.returncode, stdout, stderr)
                print(tally.add_run(label, out, done), flush=True)
            tally.durations.append(round(time.monotonic() - t0, 1))
    print()
    print(f"{args.rounds} round(s) of {args.parallel} run(s) at once"
          f"{f' with --jobs {args.jobs}' if args.jobs else ''} on {os.cpu_count()} cores")
    print(tally.report())
    if args.json:
        args.json.write_text(json.dumps(tally.as_json(), indent=2))
    return 0 if not sum(tally.fails.values()) and not tally.broken_runs else 1


if __name__ == "__main__":
    sys.exit(main())
