#!/usr/bin/env python3
"""explain against tshark on the same generated captures: wall time, CPU and peak memory of each.

Generates captures of about N packets with bench_explain.py's generator, in two
mixes, and on each runs, each in its own process:

* `python -m orchestrator explain --json FILE` (read, analyse, print), and
* `tshark -r FILE -Y tcp.flags.reset==1` (the filter a person would type),

then prints both mixes side by side: each run's wall time, CPU time and
maximum resident memory. The mixes:

* dense: every cause the explainer knows in turn, about seven connections in
  ten reset or unanswered (one verdict per ten packets: the verdicts dominate);
* production-like: `--reset-share` of the connections (default 2%) end in one
  of those causes, the others close normally (the reading dominates).

With `--floor`, each capture is also explained with no verdict made
(`analysis.classify` returning nothing): the reading, the survey and each
connection's facts, what any verdict costs on top of, printed after the table.
With `--handoff` too, what handing each connection's facts to a second process
would cost (pickled and unpickled as they are found, each timed): the verdicts
could run there, beside the reading, but the first process would still read,
find the facts and pickle them, which the line after the table compares with tshark.

    python bench/bench_explain_vs_tshark.py [--packets 2000000] [--reset-share 0.02]
        [--mix dense|production|both] [--keep DIR] [--floor [--handoff]]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_explain import generate

ROOT = Path(__file__).resolve().parent.parent


class Run(NamedTuple):
    wall: float      # s
    cpu: float       # s, user + system
    rss: float       # MB, maximum resident set


def measure(argv: list[str]) -> Run:
    """Wall time, CPU time and max RSS of one child process run to its end (CPU time too: the
    machine may be shared, and wall time then says little)."""
    with tempfile.TemporaryFile() as errors:     # a file, not a pipe: a child that writes much cannot block on it
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=errors)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)     # reaped here: Popen must not wait for it again
        if proc.returncode != 0:
            errors.seek(0)
            said = errors.read().decode(errors="replace").strip().splitlines()[-3:]
            raise SystemExit(f"{' '.join(argv)} failed (exit status {proc.returncode})"
                             + "".join(f"\n  {line}" for line in said))
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


# `explain --json FILE` with no verdict made: what reading and facts cost
_FLOOR = ("import sys\nfrom orchestrator.explain import analysis\nfrom orchestrator.cli import main\n"
          "analysis.classify = lambda f, ctx: None\nsys.exit(main(['explain', '--json', sys.argv[1]]))")


# `explain --json FILE`, each connection's facts pickled and unpickled as they are found; the CPU seconds of
# each written to the file named second
_HANDOFF = ("import pickle, sys, time\nfrom orchestrator.explain import analysis\nfrom orchestrator.cli import main\n"
            "facts_of, spent = analysis.facts_of, [0.0, 0.0, 0]\n"
            "def timed(part):\n"
            "    f = facts_of(part)\n"
            "    if f is not None:\n"
            "        t0 = time.process_time(); data = pickle.dumps(f, pickle.HIGHEST_PROTOCOL); t1 = time.process_time()\n"
            "        pickle.loads(data); spent[0] += t1 - t0; spent[1] += time.process_time() - t1; spent[2] += 1\n"
            "    return f\n"
            "analysis.facts_of = timed\nstatus = main(['explain', '--json', sys.argv[1]])\n"
            "with open(sys.argv[2], 'w') as out:\n    out.write(' '.join(map(str, spent)))\nsys.exit(status)")


def handoff(path: Path, folder: Path) -> tuple[float, float, int]:
    """CPU seconds to pickle and to unpickle each connection's facts of `path`, and how many there were."""
    figures = folder / "handoff.txt"
    measure([sys.executable, "-c", _HANDOFF, str(path), str(figures)])
    dumps, loads, count = figures.read_text().split()
    figures.unlink()
    return float(dumps), float(loads), int(count)


def _cell(r: Run) -> str:
    return f"{r.wall:6.1f} s {r.cpu:6.1f} s {r.rss:7.0f} MB"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=2_000_000)
    ap.add_argument("--reset-share", type=float, default=0.02,
                    help="share of the production-like mix's connections that reset (default 0.02)")
    ap.add_argument("--mix", choices=("dense", "production", "both"), default="both")
    ap.add_argument("--keep", help="write the captures into this folder and keep them")
    ap.add_argument("--floor", action="store_true", help="also explain each capture with no verdict made")
    ap.add_argument("--handoff", action="store_true",
                    help="with --floor: also time handing each connection's facts to a second process")
    args = ap.parse_args()
    if args.handoff and not args.floor:
        ap.error("--handoff needs --floor")
    mixes: list[tuple[str, float | None]] = []
    if args.mix in ("dense", "both"):
        mixes.append(("dense", None))
    if args.mix in ("production", "both"):
        mixes.append((f"production-like ({args.reset_share:.0%} reset)", args.reset_share))
    rows: list[tuple[str, int, float, Run, Run]] = []
    floors: list[tuple[str, Run]] = []
    handoffs: list[tuple[float, float, int]] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.keep) if args.keep else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        for label, share in mixes:
            path = folder / ("dense.pcap" if share is None else f"production-{share:g}.pcap")
            t0 = time.perf_counter()
            written, _kinds = generate(path, args.packets, share)
            size = path.stat().st_size / 1e6
            print(f"{label}: generated {written:,} frames, {size:.0f} MB in {time.perf_counter() - t0:.1f} s",
                  flush=True)
            ours = measure([sys.executable, "-m", "orchestrator", "explain", "--json", str(path)])
            theirs = measure(["tshark", "-r", str(path), "-Y", "tcp.flags.reset==1"])
            if args.floor:
                floors.append((label, measure([sys.executable, "-c", _FLOOR, str(path)])))
            if args.handoff:
                handoffs.append(handoff(path, folder))
            rows.append((label, written, size, ours, theirs))
            if not args.keep:
                path.unlink()
    print()
    print(f"{'capture':<36} {'frames':>10} {'explain --json: wall, CPU, max RSS':>34}   "
          f"{'tshark -Y tcp.flags.reset==1':>30}   explain/tshark CPU")
    for label, written, size, ours, theirs in rows:
        print(f"{label + f', {size:.0f} MB':<36} {written:>10,} {_cell(ours):>34}   {_cell(theirs):>30}   "
              f"{ours.cpu / theirs.cpu:.2f}x")
    for (label, _written, _size, ours, theirs), (_, floor) in zip(rows, floors, strict=False):
        verdicts = ours.cpu - floor.cpu
        print(f"{label}: with no verdict made {_cell(floor)}, {floor.cpu / theirs.cpu:.2f}x tshark's CPU; "
              f"the verdicts {verdicts:.1f} s CPU")
    for (label, _written, _size, ours, theirs), (_, floor), (dumps, loads, count) in zip(rows, floors, handoffs,
                                                                                         strict=False):
        first = floor.cpu + dumps
        print(f"{label}: handing {count:,} connections' facts to a second process: pickling {dumps:.1f} s CPU, "
              f"unpickling {loads:.1f} s; the first process alone (reading, facts, pickling) {first:.1f} s, "
              f"{first / theirs.cpu:.2f}x tshark's CPU; the second (unpickling, verdicts) "
              f"{loads + ours.cpu - floor.cpu:.1f} s")
    print(f"(cpus {os.cpu_count()}, load average {', '.join(f'{x:.1f}' for x in os.getloadavg())})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
