#!/usr/bin/env python3
"""How long the lab takes, and where the time goes (issues 7 and 19's figures).

    python bench/bench_lab.py            `run closed-port` and `list` (5 each), then warm `all` (default jobs)
                                         and `all --jobs 1`, 3 of each alternated, per-scenario split;
                                         the orchestrator's peak memory (max RSS) for each
    python bench/bench_lab.py --no-serial  the same without the `--jobs 1` runs
    python bench/bench_lab.py --cold     first removes the lab's images, so `all` builds them (offline base)
    python bench/bench_lab.py --witness  the kernel witness's cost: warm `all` with and without it, alternated

Per scenario: wall time, its inherent wait (the steps, which wait on the
kernel's own timers, plus the settle time before captures stop) and the
overhead around it (hosts and sidecars started and ready, captures in; the
network and containers are created ahead while the scenario before waits on
its timers, and a finished scenario's are removed in the background).

So that nothing done in the background hides: the all-in overhead per scenario
is the whole `all --jobs 1` wall time (process start, image check, the final
removals included) less the catalogue's inherent waits, over the scenario count.
Prints figures only; it asserts nothing.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def orchestrator(*args: str) -> tuple[float, int, float]:
    """Wall seconds, exit status and peak memory (max RSS, MiB) of one `python -m orchestrator ARGS`."""
    with tempfile.TemporaryFile() as err:
        t = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "orchestrator", *args], cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=err)
        _, wait_status, usage = os.wait4(proc.pid, 0)
        seconds = time.monotonic() - t
        proc.returncode = status = os.waitstatus_to_exitcode(wait_status)
        if status not in (0, 1):
            err.seek(0)
            sys.exit(f"orchestrator {' '.join(args)} failed ({status}): {err.read().decode().strip()}")
    return seconds, status, usage.ru_maxrss / 1024


def run_all(out: Path, *extra: str) -> tuple[float, dict]:
    seconds, status, rss = orchestrator("all", "--out", str(out), *extra)
    summary = json.loads((out / "summary.json").read_text())
    summary["status"] = status
    summary["max_rss_mib"] = rss
    print_failures(out, summary)
    return seconds, summary


def print_failures(out: Path, summary: dict) -> None:
    """A figure from a run that did not pass says which scenario and why (its failing checks)."""
    for s in summary["scenarios"]:
        if s["verdict"] != "passed":
            result = out / s["id"] / "result.json"
            checks = [c for c in json.loads(result.read_text())["checks"] if not c["passed"]] if result.exists() else []
            print(f"  {out.name}: {s['id']} {s['verdict']}: {s['error'] or ''}" + "".join(
                f"\n    {c['kind']} {c['subject']}: expected {c['expected']}; observed {c['observed']}" for c in checks))


def single_commands(out: Path, runs: int) -> None:
    """`run closed-port` and `list`: median wall time of `runs` each, and the orchestrator's peak memory."""
    closed = [orchestrator("run", "closed-port", "--out", str(out / f"closed{i}")) for i in range(runs)]
    listed = [orchestrator("list") for _ in range(runs)]
    for name, results in (("run closed-port", closed), ("list", listed)):
        walls = [r[0] for r in results]
        print(f"{name + ':':31} {statistics.median(walls):6.2f} s   median of "
              f"{'  '.join(f'{w:.2f}' for w in walls)}; peak memory {max(r[2] for r in results):.0f} MiB")


def per_scenario(warm: float, serial_runs: list[tuple[float, dict, Path]]) -> None:
    """`all --jobs 1`: its wall time, the speed-up of the default jobs, and where each scenario's time goes."""
    serial = statistics.median(w for w, _, _ in serial_runs)
    print(f"warm all --jobs 1:              {serial:6.1f} s   median of "
          f"{'  '.join(f'{r[0]:.1f}' for r in serial_runs)}")
    print(f"speed-up of the default jobs:   {serial / warm:6.2f} x (of the medians)")
    print()
    # the per-scenario split comes from the --jobs 1 run of median wall time
    _, serial_summary, folder = sorted(serial_runs, key=lambda r: r[0])[len(serial_runs) // 2]
    print(f"{'scenario (--jobs 1, median run)':31} {'wall':>6} {'inherent':>9} {'overhead':>9}   setup  capture  teardown")
    overheads, inherents = [], []
    for s in serial_summary["scenarios"]:
        t = json.loads((folder / s["id"] / "result.json").read_text())["timings"]
        inherent = t.get("steps", 0) + t.get("settle", 0)
        overhead = s["duration_s"] - inherent
        overheads.append(overhead)
        inherents.append(inherent)
        print(f"{s['id']:31} {s['duration_s']:6.2f} {inherent:9.2f} {overhead:9.2f}   "
              f"{t.get('setup', 0):5.2f}  {t.get('capture', 0):7.2f}  {t.get('teardown', 0):8.2f}")
    print(f"{'mean overhead':31} {'':6} {'':9} {sum(overheads) / len(overheads):9.2f}")
    print(f"{'all-in overhead per scenario':31} {serial:6.2f} {sum(inherents):9.2f} "
          f"{(serial - sum(inherents)) / len(inherents):9.2f}   (whole --jobs 1 run)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold", action="store_true", help="remove the lab's images first and time the cold run")
    parser.add_argument("--repeat", type=int, default=3, metavar="N",
                        help="warm runs of each kind, alternated; medians are reported (default 3)")
    parser.add_argument("--no-serial", action="store_true", help="skip the `all --jobs 1` runs (the per-scenario split)")
    parser.add_argument("--witness", action="store_true",
                        help="only the kernel witness's cost: warm all and all --no-witness, alternated")
    parser.add_argument("--reuse", action="store_true",
                        help="only what reusing hosts saves: warm all and all --fresh, alternated, with the "
                             "machine's busy CPU-s and how many scenarios ran on reused hosts")
    args = parser.parse_args()
    from bench_engine import reference_loop  # (bench/ is on the path: this script's folder)

    print(f"python reference loop:          {reference_loop():6.2f} CPU-s (fixed work: how fast this machine is)")
    if args.witness:
        witness_cost(args.repeat)
        return
    if args.reuse:
        reuse_gain(args.repeat)
        return
    with tempfile.TemporaryDirectory(prefix="rstlab-bench-") as tmp:
        out = Path(tmp)
        if args.cold:
            orchestrator("clean", "--images")
            cold, summary = run_all(out / "cold")
            print(f"cold all (images built first): {cold:6.1f} s   {summary['passed']}/{summary['total']} passed")
        single_commands(out, 5)
        warm_runs, serial_runs = [], []
        for i in range(args.repeat):   # alternated, so a slow spell of the machine hits both kinds
            warm_runs.append(run_all(out / f"warm{i}"))
            if not args.no_serial:
                serial_runs.append(run_all(out / f"serial{i}", "--jobs", "1") + (out / f"serial{i}",))
        warm = statistics.median(w for w, _ in warm_runs)
        shown = lambda runs: "  ".join(f"{r[0]:.1f}" for r in runs)  # noqa: E731
        passed = lambda runs: " ".join(f"{r[1]['passed']}/{r[1]['total']}" for r in runs)  # noqa: E731
        print(f"warm all (default jobs):        {warm:6.1f} s   median of {shown(warm_runs)}; passed {passed(warm_runs)}")
        print(f"orchestrator peak memory (all): {statistics.median(r[1]['max_rss_mib'] for r in warm_runs):6.0f} MiB "
              f"(max RSS, median of the warm runs)")
        verdicts = {tuple(s["verdict"] for s in r[1]["scenarios"]) for r in warm_runs + serial_runs}
        print(f"identical verdicts:             {len(verdicts) == 1}")
        if serial_runs:
            per_scenario(warm, serial_runs)
    print()
    sizes = subprocess.run(["docker", "images", "--filter", "label=rstlab.run", "--format",
                            "{{.Repository}}:{{.Tag}} {{.Size}}"], capture_output=True, text=True).stdout
    print("images:\n" + "".join(f"  {line}\n" for line in sizes.splitlines() if not line.endswith(":latest")))


def reuse_gain(repeat: int) -> None:
    """Warm `all` (finished scenarios' hosts reset and reused) and `all --fresh`, alternated."""
    from bench_engine import machine_busy
    with tempfile.TemporaryDirectory(prefix="rstlab-bench-") as tmp:
        out = Path(tmp)
        runs: dict[str, list[tuple[float, float, int]]] = {"reuse": [], "fresh": []}
        for i in range(repeat):
            order = [("reuse", ()), ("fresh", ("--fresh",))]
            for kind, extra in order if i % 2 == 0 else order[::-1]:
                before = machine_busy()
                seconds, summary = run_all(out / f"{kind}{i}", *extra)
                busy = machine_busy() - before
                reused = sum(1 for doc in (out / f"{kind}{i}").glob("*/result.json")
                             if json.loads(doc.read_text())["lab"]["ran_after"])
                runs[kind].append((seconds, busy, reused))
                print(f"  run {i + 1} {kind:5}: {seconds:6.1f} s  {busy:5.1f} busy CPU-s  {reused:2} scenarios on "
                      f"reused hosts  {summary['passed']}/{summary['total']} passed", flush=True)
        for kind, got in runs.items():
            print(f"warm all, {kind:5}:               {statistics.median(r[0] for r in got):6.1f} s   "
                  f"{statistics.median(r[1] for r in got):5.1f} busy CPU-s (medians)")


def witness_cost(repeat: int) -> None:
    """Warm `all` with the kernel witness and with --no-witness, alternated (which goes first alternates too)."""
    with tempfile.TemporaryDirectory(prefix="rstlab-bench-") as tmp:
        out = Path(tmp)
        on: list[float] = []
        off: list[float] = []
        for i in range(repeat):
            order = [("on", ()), ("off", ("--no-witness",))]
            for kind, extra in order if i % 2 == 0 else order[::-1]:
                seconds, summary = run_all(out / f"{kind}{i}", *extra)
                (on if kind == "on" else off).append(seconds)
                print(f"  run {i + 1} witness {kind:3}: {seconds:6.1f} s   {summary['passed']}/{summary['total']} passed",
                      flush=True)
        with_it, without = statistics.median(on), statistics.median(off)
        print(f"warm all with the witness:      {with_it:6.1f} s   median of {'  '.join(f'{s:.1f}' for s in on)}")
        print(f"warm all --no-witness:          {without:6.1f} s   median of {'  '.join(f'{s:.1f}' for s in off)}")
        print(f"the witness adds:               {100 * (with_it - without) / without:+6.1f} % (of the medians)")


if __name__ == "__main__":
    main()
