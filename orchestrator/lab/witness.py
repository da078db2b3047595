"""The kernel witness: a private tracefs instance that records why the lab's hosts sent and took RSTs.

Like bcc's tcpdrop, but with no BPF: since Linux 6.10 `tcp:tcp_send_reset`
carries the reason itself. One instance per run
(`/sys/kernel/tracing/instances/rstlab-<run id>`: its own buffer and event
switches, so runs never disturb each other), trace_clock `mono` (the clock of
`time.monotonic()`), three events:

    tcp/tcp_send_reset        a host's TCP sent a RST: reason and socket state
    tcp/tcp_receive_reset     a socket took a RST
    sock/inet_sock_set_state  (to TCP_CLOSE only) the state that socket left

The two events with 4-byte addresses are filtered in the kernel to local
addresses in the lab's range. tcp_send_reset cannot be: its addresses are a
28-byte sockaddr, and a filter predicate compares fields of 1, 2, 4 or 8 bytes
only (on 6.18 a predicate on it is accepted and matches nothing), so its few
lines are sorted by address when read (`orchestrator.witness`).
An example of what an instance records is in tests/unit/data/witness_example.txt.
"""
from __future__ import annotations

import errno
import ipaddress
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Self

import docker

from ..witness import KernelEvent, events_of, parse_trace

TRACEFS = Path("/sys/kernel/tracing")
PREFIX = "rstlab-"
LAB_RANGE = ipaddress.IPv4Network("10.213.0.0/16")
MIN_KERNEL = (6, 10)      # tcp_send_reset's reason field (enum sk_rst_reason) arrived in 6.10
SWEEP_GRACE = 120.0       # s: a younger instance may belong to a run that has made no object yet
BUFFER_KB = 256           # per CPU; a run's events are a few hundred lines at most
BUSY_WAIT = 2.0           # s: how long a setting the kernel refuses while `trace` is being read is retried
EVENTS = ("tcp/tcp_send_reset", "tcp/tcp_receive_reset", "sock/inet_sock_set_state")


def prefix_filter(field: str, network: ipaddress.IPv4Network) -> str:
    """A filter expression: the `__u8 field[4]` address lies in `network`.

    The kernel reads a 4-byte array as a host-order u32 and has no masked
    equality, only `&` (true when any bit is shared): so every bit that must
    be 1 is one test, and the bits that must be 0 are one `!(field & mask)`.
    """
    mask = int.from_bytes(network.netmask.packed, sys.byteorder)
    value = int.from_bytes(network.network_address.packed, sys.byteorder)
    terms = [f"{field} & {1 << bit:#x}" for bit in range(32) if value >> bit & 1]
    zeros = mask & ~value
    if zeros:
        terms.append(f"!({field} & {zeros:#x})")
    return "(" + " && ".join(terms) + ")" if terms else "1"


FILTERS = {
    "tcp/tcp_receive_reset": f"family == 2 && {prefix_filter('saddr', LAB_RANGE)}",
    "sock/inet_sock_set_state": f"protocol == 6 && newstate == 7 && {prefix_filter('saddr', LAB_RANGE)}",
}


def _kernel_version(release: str) -> tuple[int, int]:
    m = re.match(r"(\d+)\.(\d+)", release)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def unavailable(engine_info: Mapping[str, object], root: Path = TRACEFS, *,
                release: str | None = None, euid: int | None = None, docker_host: str | None = None,
                platform_name: str = sys.platform, mount: Callable[[Path], str | None] | None = None) -> str | None:
    """Why the witness cannot watch the kernel the lab's hosts run on, or None when it can.

    `engine_info` is the engine's `docker info`; the rest default to this process's facts.
    """
    release = platform.release() if release is None else release
    euid = os.geteuid() if euid is None and hasattr(os, "geteuid") else (0 if euid is None else euid)
    docker_host = os.environ.get("DOCKER_HOST", "") if docker_host is None else docker_host
    if platform_name != "linux":
        return f"the engine's kernel is not this {platform_name} machine's (Docker runs Linux in a VM)"
    if docker_host and not docker_host.startswith("unix://"):
        return f"DOCKER_HOST is {docker_host}: the hosts run on another machine's kernel"
    system = str(engine_info.get("OperatingSystem", ""))
    if "Docker Desktop" in system:
        return "Docker Desktop runs the engine in its own VM, whose kernel this process cannot trace"
    engine_kernel = str(engine_info.get("KernelVersion", release))
    if engine_kernel != release:
        return f"the engine runs kernel {engine_kernel}, this process {release}: not the same kernel"
    if _kernel_version(release) < MIN_KERNEL:
        return f"kernel {release} is older than 6.10: tcp:tcp_send_reset gives no reason"
    if euid != 0:
        return "not root: the kernel's tracing filesystem needs root"
    if not (root / "instances").is_dir():
        problem = (mount or _mount)(root)
        if problem:
            return f"tracefs is not mounted at {root} and cannot be ({problem})"
    if not (root / "events" / "tcp" / "tcp_send_reset").is_dir():
        return "this kernel has no tcp:tcp_send_reset tracepoint"
    return None


def _mount(root: Path) -> str | None:
    """`mount -t tracefs nodev ROOT`; what went wrong, or None."""
    try:
        done = subprocess.run(["mount", "-t", "tracefs", "nodev", str(root)], capture_output=True, text=True,
                              timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if done.returncode != 0 or not (root / "instances").is_dir():
        return done.stderr.strip() or f"mount exited {done.returncode}"
    return None


class TraceInstance:
    """One run's private tracing instance: created and switched on by `start`, gone after `remove`."""

    def __init__(self, run_id: str, root: Path = TRACEFS) -> None:
        self.path = root / "instances" / f"{PREFIX}{run_id}"

    def start(self) -> None:
        """Make the instance, set its clock, buffer and filters, and switch its events on. OSError if refused.

        Its first line names the run and the process that owns it, so a sweep
        can tell a live run's instance from a killed one's.
        """
        self.path.mkdir()
        try:
            (self.path / "trace_clock").write_text("mono")
            _write_when_free(self.path / "buffer_size_kb", str(BUFFER_KB))
            pause = self.path / "options" / "pause-on-trace"
            if pause.exists():
                pause.write_text("0")   # reading `trace` must not stop the recording of other scenarios
            (self.path / "trace_marker").write_text(f"{OWNER_TAG} run={self.path.name[len(PREFIX):]} "
                                                    f"pid={os.getpid()} start={process_start(os.getpid())}\n")
            for event in EVENTS:
                where = self.path / "events" / event
                if event in FILTERS:
                    (where / "filter").write_text(FILTERS[event])
                (where / "enable").write_text("1")
        except BaseException:   # refused, or interrupted half-way (Ctrl-C): no instance is left behind
            self.remove()
            raise

    def read(self) -> str:
        """Everything recorded so far (the `trace` file: reading does not consume it)."""
        return (self.path / "trace").read_text(errors="replace")

    def remove(self) -> None:
        """Switch off and remove the instance (its buffer goes with it); nothing if already gone."""
        _switch_off(self.path)
        try:
            self.path.rmdir()
        except FileNotFoundError:
            pass


def _write_when_free(path: Path, text: str, wait: float = BUSY_WAIT, pause: float = 0.01) -> None:
    """Write a tracefs setting the kernel refuses (EBUSY) while anyone has the instance's `trace` open:
    another run's sweep reads it to find who made the instance, for a moment. Retried until `wait` runs out."""
    deadline = time.monotonic() + wait
    while True:
        try:
            path.write_text(text)
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY or time.monotonic() >= deadline:
                raise
        time.sleep(pause)


OWNER_TAG = "rstlab-witness"
_OWNER = re.compile(OWNER_TAG + r" run=\S+ pid=(\d+) start=(\d+)")


def process_start(pid: int) -> int:
    """A process's start time (clock ticks since boot, /proc/PID/stat field 22); 0 if it is gone.

    With the pid it names one process: a pid reused later has another start time.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    return int(stat.rpartition(")")[2].split()[19])


def owner_alive(instance: Path) -> bool | None:
    """Is the process that made an instance still running? None if the instance does not say who made it."""
    try:
        text = (instance / "trace").read_text(errors="replace")
    except OSError:
        return None
    m = _OWNER.search(text)
    if m is None:
        return None
    start = int(m.group(2))
    return start != 0 and process_start(int(m.group(1))) == start


def _switch_off(path: Path) -> None:
    try:
        if (path / "tracing_on").exists():
            (path / "tracing_on").write_text("0")
    except OSError:
        pass


def lab_instances(root: Path = TRACEFS) -> dict[str, Path]:
    """run id -> instance directory, for every instance the lab made."""
    try:
        entries = list((root / "instances").iterdir())
    except OSError:
        return {}
    return {p.name[len(PREFIX):]: p for p in entries if p.name.startswith(PREFIX)}


def sweep_instances(run_is_live: Callable[[str], bool], root: Path = TRACEFS, grace: float = SWEEP_GRACE,
                    now: Callable[[], float] = time.time) -> list[str]:
    """Remove the instances of runs that are over (killed with -9: nobody removed them). Returns their run ids.

    An instance goes when the process that made it is gone (its first line
    names it). One that does not say (its first line overwritten) goes when its
    run has no object left on the engine (`run_is_live` False) and it is older
    than `grace` seconds (a run makes its instance a moment before its first
    container). Other runs' live instances stay.
    """
    removed = []
    for run_id, path in sorted(lab_instances(root).items()):
        alive = owner_alive(path)
        if alive:
            continue
        if alive is None:
            try:
                age = now() - path.stat().st_ctime
            except OSError:
                continue
            if age < grace or run_is_live(run_id):
                continue
        _switch_off(path)
        try:
            path.rmdir()
            removed.append(run_id)
        except OSError:
            continue   # removed meanwhile by its own run, or busy: the next sweep tries again
    return removed


class RunWitness:
    """The witness of one run: its tracing instance when the kernel can be watched, else the reason it cannot."""

    def __init__(self, run_id: str, engine_info: Mapping[str, object], root: Path = TRACEFS,
                 check: Callable[[Mapping[str, object], Path], str | None] = unavailable) -> None:
        self.unavailable = check(engine_info, root)
        self.instance: TraceInstance | None = None
        if self.unavailable is None:
            instance = TraceInstance(run_id, root)
            try:
                instance.start()
                self.instance = instance
            except OSError as exc:
                self.unavailable = f"cannot make the tracing instance {instance.path} ({exc.strerror or exc})"

    def events(self, addresses: Iterable[str], start: float, end: float) -> list[KernelEvent] | None:
        """The events local to `addresses` between two `time.monotonic()` readings; None if not witnessed."""
        if self.instance is None:
            return None
        try:
            text = self.instance.read()
        except OSError as exc:
            self.unavailable = f"the tracing instance could not be read ({exc.strerror or exc})"
            return None
        return events_of(parse_trace(text), addresses, start, end)

    def close(self) -> None:
        if self.instance is not None:
            self.instance.remove()
            self.instance = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def sweep_for_engine(client: docker.DockerClient, root: Path = TRACEFS) -> list[str]:
    """`sweep_instances` with the engine saying which runs still have objects."""
    from . import engine

    return sweep_instances(lambda run_id: bool(engine.lab_objects(client, f"{engine.RUN}={run_id}")), root)


def forget_run(run_id: str, root: Path = TRACEFS) -> None:
    """The run's tracing instance gone, by its name, whatever moment an interrupt hit its making or adoption
    (busy: the next run's sweep takes it)."""
    try:
        TraceInstance(run_id, root).remove()
    except OSError:
        pass


def open_witness(client: docker.DockerClient, run_id: str, info: Mapping[str, object],
                 watch: bool = True) -> RunWitness:
    """The witness of a new run on this engine (`info`: its `docker info`): instances left by killed runs
    swept first.

    `watch` False (--no-witness): a witness that records nothing and says so.
    """
    if not watch:
        return RunWitness(run_id, {}, check=lambda info, root: "turned off (--no-witness)")
    if unavailable(info) is None:
        sweep_for_engine(client)
    return RunWitness(run_id, info)
