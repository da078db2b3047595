#!/usr/bin/env python3
"""explain against tshark on the same generated capture: wall time and peak memory of each.

Generates a capture of about N packets with bench_explain.py's generator (every
cause the explainer knows, most connections closing normally), then runs, each
in its own process:

* `python -m orchestrator explain --json FILE` (read, analyse, print), and
* `tshark -r FILE -Y tcp.flags.reset==1` (the filter a person would type),

and prints each one's wall time and maximum resident memory.

    python bench/bench_explain_vs_tshark.py [--packets 2000000] [--keep FILE]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_explain import generate

ROOT = Path(__file__).resolve().parent.parent


def measure(argv: list[str]) -> tuple[float, float, float]:
    """(wall seconds, max RSS in MB, CPU seconds) of one child process run to its end (CPU time
    too: the machine may be shared, and wall time then says little)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, _, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if proc.returncode not in (0, None) and usage is None:
        raise SystemExit(f"{argv[0]} failed")
    return wall, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=2_000_000)
    ap.add_argument("--keep", help="write the capture here and keep it")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.keep) if args.keep else Path(tmp) / "bench.pcap"
        t0 = time.perf_counter()
        written, _kinds = generate(path, args.packets)
        print(f"generated {written:,} frames, {path.stat().st_size / 1e6:.0f} MB in "
              f"{time.perf_counter() - t0:.1f} s")
        ours = measure([sys.executable, "-m", "orchestrator", "explain", "--json", str(path)])
        theirs = measure(["tshark", "-r", str(path), "-Y", "tcp.flags.reset==1"])
        print(f"explain --json: {ours[0]:.1f} s wall, {ours[2]:.1f} s CPU, max RSS {ours[1]:.0f} MB")
        print(f"tshark -Y tcp.flags.reset==1: {theirs[0]:.1f} s wall, {theirs[2]:.1f} s CPU, max RSS {theirs[1]:.0f} MB")
        print(f"explain/tshark: time {ours[0] / theirs[0]:.2f}x, CPU {ours[2] / theirs[2]:.2f}x, "
              f"memory {ours[1] / theirs[1]:.2f}x "
              f"(cpus {os.cpu_count()}, load {os.getloadavg()[0]:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
