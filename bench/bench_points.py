#!/usr/bin/env python3
"""explain with several capture points: wall time, CPU and peak memory against one point.

Generates a capture of about N packets in each of bench_explain.py's two mixes
(dense: seven connections in ten reset or unanswered; production-like: 2% of
them reset) and runs, each in its own process:

* `python -m orchestrator explain --json FILE` (one point), and
* `python -m orchestrator explain --json P1 … PK` on K copies of it (K points:
  every connection is then found at every point, and every RST followed).

Several points are read a chunk at a time (`explain/multi.explain_point_files`):
what they hold is the packets of the connections worth explaining or sharing
a segment with one that holds a RST, so memory grows with those, not with the
files.

    python bench/bench_points.py [--packets 200000] [--points 2] [--mix dense|production|both]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_explain import generate
from bench_explain_vs_tshark import _cell, measure


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=200_000)
    ap.add_argument("--points", type=int, default=2, help="copies of the capture given as points (default 2)")
    ap.add_argument("--mix", choices=("dense", "production", "both"), default="both")
    args = ap.parse_args()
    if args.points < 2:
        ap.error("--points: give 2 or more")
    mixes = [(label, share) for label, share in (("dense", None), ("production-like (2% reset)", 0.02))
             if args.mix == "both" or label.startswith(args.mix)]
    explain = [sys.executable, "-m", "orchestrator", "explain", "--json"]
    print(f"{'capture':<28} {'frames':>10} {'one point: wall, CPU, max RSS':>32}   "
          f"{f'{args.points} points: wall, CPU, max RSS':>32}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for label, share in mixes:
            path = Path(tmp) / "point1.pcap"
            written, _ = generate(path, args.packets, share)
            copies = [path] + [Path(tmp) / f"point{i}.pcap" for i in range(2, args.points + 1)]
            for copy in copies[1:]:
                os.link(path, copy)
            one = measure([*explain, str(path)])
            several = measure([*explain, *map(str, copies)])
            print(f"{label:<28} {written:>10,} {_cell(one):>32}   {_cell(several):>32}", flush=True)
            for copy in copies:
                copy.unlink()
    print(f"(cpus {os.cpu_count()}, load average {', '.join(f'{x:.1f}' for x in os.getloadavg())})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
