#!/usr/bin/env python3
"""Where the engine's CPU goes (issue 19): what one container costs, and who spends a warm `all`'s CPU.

    python bench/bench_engine.py          per-object costs, then one warm `all` split by who spent its CPU
    python bench/bench_engine.py --objects-only

Per-object costs: CPU-seconds of the whole machine (from /proc/stat) to create
and start, then remove, N containers like the lab's: a host (the lab's host
image on an internal network, cap_drop ALL, its agent as main process), a
capture sidecar (tcpdump in the host's network namespace) and a network; and
one signal and one exec into a running container. The machine must be idle:
every process's CPU counts.

The warm `all` split (the engine must run on this machine, /proc readable):
dockerd and containerd with the children they reaped (fuse-overlayfs mounts,
iptables, the re-executions of dockerd for a network sandbox), the processes in
the containers (the docker cgroup: agents, tcpdump, entrypoints), the
orchestrator, and the rest (container shims, runc, runc's hooks, the kernel).
With the number of containers and networks the run made, from the engine's events.

Everything made here carries the lab's labels, so `python -m orchestrator clean` removes what an
interrupted run leaves. Prints figures only; it asserts nothing.
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from orchestrator.lab import engine  # noqa: E402
from orchestrator.lab.sidecar import SIDECAR_CAPS, TCPDUMP_ARGS  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def machine_busy() -> float:
    """CPU-seconds the whole machine has been busy (all cores, everything but idle and iowait)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / TICK


def process_cpu(pid: int) -> float:
    """A process's CPU-seconds with those of the children it reaped."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / TICK


def pid_of(name: str) -> int | None:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == name:
                    return int(entry.name)
            except OSError:
                continue
    return None


def containers_cpu() -> float | None:
    """CPU-seconds of everything that ran in a container (cgroup v1's docker group, which keeps the time of
    removed containers); None where there is no such group (cgroup v2 drops a removed container's time)."""
    path = Path("/sys/fs/cgroup/cpuacct/docker/cpuacct.usage")
    return int(path.read_text()) / 1e9 if path.exists() else None


def cost(what: str, count: int, work: Callable[[], Any]) -> Any:
    """Run `work`, print the machine's CPU per object (the background's 10 ms/s left out) and wall per object."""
    time.sleep(0.5)
    busy, start = machine_busy(), time.monotonic()
    result = work()
    time.sleep(1.0)   # let what the engine does after answering (exits, unmounts) land
    wall = time.monotonic() - start
    print(f"  {what:44} {(machine_busy() - busy - 0.01 * wall) / count:6.3f} CPU-s each   "
          f"{(wall - 1.0) / count:6.3f} s wall each", flush=True)
    return result


def objects(n: int) -> None:
    import docker

    client = docker.from_env()
    run_id = engine.new_run_id()
    labels = engine.labels(run_id, "bench-engine")
    image, base = "rstlab/host:latest", "rstlab/base:latest"
    quiet = {"type": "none"}   # as the lab's: output over the attached channel, nothing logged
    print(f"per object, {n} of each ({image}; run {run_id}):")
    try:
        nets = cost("network create", n, lambda: [client.networks.create(
            f"rstlab-bench-{run_id}-{i}", internal=True, labels=labels) for i in range(n)])
        cost("network remove", n, lambda: [net.remove() for net in nets])
        net = client.networks.create(f"rstlab-bench-{run_id}", internal=True, labels=labels)
        hosts = cost("host create+start (internal network, agent)", n, lambda: [client.containers.run(
            image, detach=True, stdin_open=True, network=net.name, cap_drop=["ALL"], log_config=quiet,
            labels=labels)
            for _ in range(n)])
        bare = cost("container create+start (no network, sleep)", n, lambda: [client.containers.run(
            image, ["100"], entrypoint=["sleep"], detach=True, network_mode="none", cap_drop=["ALL"],
            log_config=quiet, labels=labels) for _ in range(n)])
        sidecars = cost("sidecar create+start (tcpdump, host's netns)", n, lambda: [client.containers.run(
            base, TCPDUMP_ARGS, entrypoint=["tcpdump"], detach=True, network_mode=f"container:{hosts[0].id}",
            read_only=True, cap_drop=["ALL"], cap_add=SIDECAR_CAPS, pids_limit=16, mem_limit="64m",
            log_config=quiet, labels=labels) for _ in range(n)])
        cost("signal (kill SIGUSR1 to a sidecar)", n, lambda: [sidecars[0].kill("SIGUSR1") for _ in range(n)])
        cost("exec (true, in a host)", n, lambda: [hosts[0].exec_run(["true"]) for _ in range(n)])
        cost("sidecar remove", n, lambda: [s.remove(force=True) for s in sidecars])
        cost("container remove (no network)", n, lambda: [b.remove(force=True) for b in bare])
        cost("host remove", n, lambda: [h.remove(force=True) for h in hosts])
    finally:
        engine.remove_until_gone(client, f"{engine.RUN}={run_id}")


def split_of_all() -> None:
    """One warm `all`: who spent its CPU, and how many containers and networks it made."""
    import docker

    client = docker.from_env()
    dockerd, containerd = pid_of("dockerd"), pid_of("containerd")
    if dockerd is None or containerd is None:
        print("warm all split: the engine does not run on this machine (no dockerd in /proc)")
        return
    made = {"container": 0, "network": 0}
    stream = client.events(decode=True, filters={"event": "create"})

    def count() -> None:   # the engine keeps only its last 256 events: they are counted as they come
        for event in stream:
            attributes = event.get("Actor", {}).get("Attributes", {})
            # a container's event carries its labels; a network's only its name (the lab's start with rstlab-)
            if event.get("Type") in made and (engine.RUN in attributes or attributes.get("name", "").startswith(
                    "rstlab-")):
                made[event["Type"]] += 1

    counter = threading.Thread(target=count, daemon=True)
    counter.start()
    with tempfile.TemporaryDirectory(prefix="rstlab-bench-") as tmp:
        before = (machine_busy(), process_cpu(dockerd), process_cpu(containerd), containers_cpu())
        start = time.monotonic()
        errors = Path(tmp) / "stderr.txt"      # a file, not a pipe: a child that writes much cannot block on it
        with errors.open("wb") as sink:
            proc = subprocess.Popen([sys.executable, "-m", "orchestrator", "all", "--out", str(Path(tmp) / "out")],
                                    cwd=ROOT, stdout=subprocess.DEVNULL, stderr=sink)
            _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)     # reaped here: Popen must not wait for it again
        wall = time.monotonic() - start
        after = (machine_busy(), process_cpu(dockerd), process_cpu(containerd), containers_cpu())
        said = errors.read_text(errors="replace").strip()
    time.sleep(0.5)
    stream.close()
    if proc.returncode not in (0, 1):
        sys.exit(f"all failed: {said}")
    busy, d, c = (after[i] - before[i] for i in range(3))
    inside = after[3] - before[3] if after[3] is not None and before[3] is not None else None
    mine = usage.ru_utime + usage.ru_stime
    print(f"warm all: {wall:.1f} s wall; the machine busy {busy:.1f} of {os.cpu_count() or 1} x {wall:.1f} CPU-s; "
          f"{made['container']} containers and {made['network']} networks made")
    rows = [("dockerd (+ reaped children)", d), ("containerd (+ reaped children)", c)]
    if inside is not None:
        rows.append(("in the containers (docker cgroup)", inside))
    rows.append(("the orchestrator", mine))
    rows.append(("the rest (shims, runc, hooks, kernel)", busy - sum(v for _, v in rows)))
    for name, value in rows:
        print(f"  {name:40} {value:6.1f} CPU-s  {100 * value / busy:5.1f} %")
    if made["container"]:
        print(f"  {'per container made':40} {busy / made['container']:6.2f} CPU-s (all of the machine's)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects-only", action="store_true", help="only the per-object costs")
    parser.add_argument("-n", type=int, default=10, help="objects of each kind (default 10)")
    args = parser.parse_args()
    print(f"python reference loop: {reference_loop():.2f} CPU-s (the same work on every machine: compare machines)")
    objects(args.n)
    if not args.objects_only:
        split_of_all()
    self_usage = resource.getrusage(resource.RUSAGE_SELF)
    print(f"(this script: {self_usage.ru_utime + self_usage.ru_stime:.1f} CPU-s)")


def reference_loop() -> float:
    """CPU-seconds of a fixed pure-Python loop: how fast this machine runs the orchestrator's kind of code."""
    start = time.process_time()
    total = 0
    for i in range(5_000_000):
        total += i
    return time.process_time() - start


if __name__ == "__main__":
    main()
