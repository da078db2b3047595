#!/usr/bin/env python3
"""Run the whole catalogue N times and print each scenario's pass count (flakiness, issue 6).

    python bench/soak.py 20 [--jobs N]
    python bench/soak.py 10 challenge-ack socket-destroy     # only these (--jobs 1: one at a time)

Under load too: `bench/stress.py` runs several of these at once.

A scenario that fails even once has a race to find and fix at its source.
The failing checks of each failed run are printed so the race can be found.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=int)
    parser.add_argument("scenarios", nargs="*", metavar="NAME", help="scenario ids (default: the whole catalogue)")
    parser.add_argument("--jobs", type=int, default=None)
    args = parser.parse_args()
    passes: Counter[str] = Counter()
    seen: list[str] = []
    with tempfile.TemporaryDirectory(prefix="rstlab-soak-") as tmp:
        for i in range(args.runs):
            out = Path(tmp) / str(i)
            what = ["run", *args.scenarios] if args.scenarios else ["all"]
            cmd = [sys.executable, "-m", "orchestrator", *what, "--out", str(out)]
            if args.jobs:
                cmd += ["--jobs", str(args.jobs)]
            proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
            if not (out / "summary.json").exists():
                sys.exit(f"run {i + 1} did not finish ({proc.returncode}): {proc.stderr.strip()}")
            summary = json.loads((out / "summary.json").read_text())
            for s in summary["scenarios"]:
                if s["id"] not in seen:
                    seen.append(s["id"])
                if s["verdict"] == "passed":
                    passes[s["id"]] += 1
                else:
                    doc = json.loads((out / s["id"] / "result.json").read_text())
                    bad = [f"{c['kind']} @ {c['subject']}: expected {c['expected']}; observed {c['observed']}"
                           for c in doc["checks"] if not c["passed"]]
                    print(f"run {i + 1}: {s['id']} {s['verdict']}: {doc['error'] or ''}", *bad, sep="\n    ")
            print(f"run {i + 1}/{args.runs}: {summary['passed']}/{summary['total']} passed", flush=True)
    print()
    for sid in seen:
        print(f"{sid:28} {passes[sid]:3d}/{args.runs}")


if __name__ == "__main__":
    main()
