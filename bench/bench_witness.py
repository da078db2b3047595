#!/usr/bin/env python3
"""What the kernel witness itself costs a run (issue 13): its tracefs instance made and removed, and reads.

    python bench/bench_witness.py        (root, tracefs; the whole-run comparison is bench_lab.py --witness)

A run makes one instance and removes it at the end; each scenario reads and
parses the instance once, after its captures stop. The kernel's own cost
(three tracepoints hit a few times per scenario) is too small to time here.
"""
from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from orchestrator.lab.witness import RunWitness, unavailable  # noqa: E402
from orchestrator.witness import parse_trace  # noqa: E402


def main() -> None:
    why = unavailable({"KernelVersion": platform.release()})
    if why:
        sys.exit(f"the witness cannot run here: {why}")
    record = (ROOT / "tests" / "fixtures" / "witness" / "trace.txt").read_text()
    opens, reads, closes = [], [], []
    for i in range(20):
        t = time.perf_counter()
        witness = RunWitness(f"bench{os.getpid()}x{i}", {"KernelVersion": platform.release()})
        opens.append(time.perf_counter() - t)
        t = time.perf_counter()
        witness.events(["10.213.0.10"], 0.0, 1e12)
        reads.append(time.perf_counter() - t)
        t = time.perf_counter()
        witness.close()
        closes.append(time.perf_counter() - t)
    t = time.perf_counter()
    for _ in range(100):
        parse_trace(record)
    parse = (time.perf_counter() - t) / 100
    lines = sum(1 for line in record.splitlines() if not line.startswith("#"))
    print(f"instance made (mkdir, clock, filters, events on):  median {1000 * statistics.median(opens):6.1f} ms")
    print(f"instance read, nearly empty (per scenario):        median {1000 * statistics.median(reads):6.2f} ms")
    print(f"instance removed (rmdir):                          median {1000 * statistics.median(closes):6.1f} ms")
    print(f"a whole catalogue run's record parsed ({lines} events): {1000 * parse:6.2f} ms")


if __name__ == "__main__":
    main()
