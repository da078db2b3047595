#!/usr/bin/env python3
"""How fast the commands that need no engine start: `python -m orchestrator list` and what it imports.

Runs `list` N times (default 5) from a project folder (default: this one) and
reports the median wall time and the median CPU time (user + sys, less
sensitive to a loaded machine), then counts the `docker` modules that
`python -X importtime -m orchestrator list` loads (must be 0: `list`,
`explain`, `show` and `report` never load the Docker SDK).

    python bench/bench_cli_start.py [--runs 5] [--project DIR] [--budget 0.25]

Exits 1 when docker modules are loaded or the median wall time exceeds --budget.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def one_run(project: Path) -> tuple[float, float]:
    """Wall and CPU seconds of one `list`."""
    start_wall = time.perf_counter()
    start_cpu = os.times()
    subprocess.run([sys.executable, "-m", "orchestrator", "list"], cwd=project, capture_output=True, check=True)
    end_cpu = os.times()
    wall = time.perf_counter() - start_wall
    cpu = (end_cpu.children_user - start_cpu.children_user) + (end_cpu.children_system - start_cpu.children_system)
    return wall, cpu


def docker_modules(project: Path) -> list[str]:
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "orchestrator", "list"], cwd=project,
                          capture_output=True, text=True, check=True)
    names = [line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")]
    return [n for n in names if n == "docker" or n.startswith("docker.")]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--project", type=Path, default=ROOT)
    ap.add_argument("--budget", type=float, default=0.25, help="median wall seconds allowed")
    args = ap.parse_args()
    runs = [one_run(args.project) for _ in range(args.runs)]
    wall = statistics.median(w for w, _ in runs)
    cpu = statistics.median(c for _, c in runs)
    loaded = docker_modules(args.project)
    print(f"list: median {wall:.3f} s wall, {cpu:.3f} s CPU over {args.runs} runs "
          f"(wall: {', '.join(f'{w:.3f}' for w, _ in runs)}); load average {os.getloadavg()[0]:.1f}")
    print(f"docker modules imported by list: {len(loaded)}" + (f" ({', '.join(loaded[:5])}…)" if loaded else ""))
    return 1 if loaded or wall > args.budget else 0


if __name__ == "__main__":
    sys.exit(main())
