"""Running scenarios: realise the lab, drive the steps, capture, check, write the results.

The runner never prints: it reports progress through a callback and returns
`ScenarioResult`s; the command layer decides how to show them.
"""
from __future__ import annotations

import base64
import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import docker

from .capture import Packet, parse_capture_bytes
from .errors import LabRuntimeError
from .lab import engine
from .lab.hosts import ScenarioLab
from .lab.images import ImageSet
from .model import Scenario, Step
from .topology import Topology
from .verify import Check, check_capture_integrity, check_scenario, holds

STEP_TIMEOUT = 30.0
Progress = Callable[[str, str], None]   # (scenario id, message)


@dataclass
class ScenarioResult:
    """Everything one scenario run observed and concluded."""

    scenario: Scenario
    checks: list[Check] = field(default_factory=list)
    packets: dict[str, list[Packet]] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    counters: dict[str, dict[str, int]] = field(default_factory=dict)
    hosts: dict[str, str] = field(default_factory=dict)
    capture_stats: dict[str, dict[str, int | None]] = field(default_factory=dict)
    pcaps: dict[str, bytes] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)   # setup, steps, settle, capture, teardown (s)
    error: str | None = None
    started: float = 0.0
    duration: float = 0.0
    kernel: str = ""

    @property
    def passed(self) -> bool:
        return self.error is None and all(holds(c) for c in self.checks)


def _with_addresses(value: Any, lab: ScenarioLab) -> Any:
    """`{server}` in a command or argument becomes that host's address in this run."""
    if isinstance(value, str):
        return re.sub(r"\{([a-z][a-z0-9_-]*)\}",
                      lambda m: lab.address(m.group(1)) if m.group(1) in lab.topology.hosts else m.group(0), value)
    if isinstance(value, list):
        return [_with_addresses(v, lab) for v in value]
    return value


def _agent_args(step: Step, lab: ScenarioLab) -> dict[str, Any]:
    args = {k: _with_addresses(v, lab) for k, v in step.args.items()}
    if step.call == "connect" and args.get("host") in lab.topology.hosts:
        args["host"] = lab.address(args["host"])
    return args


class _Counters:
    """Kernel counter deltas per host over the run, across restarts (a restart starts from zero)."""

    def __init__(self, lab: ScenarioLab, hosts: Sequence[str]) -> None:
        self.lab = lab
        self.base = {h: self.read(h) for h in hosts}
        self.earlier: dict[str, dict[str, int]] = {h: {} for h in hosts}

    def read(self, host: str) -> dict[str, int]:
        return dict(self.lab.agent(host).call("counters", {}, STEP_TIMEOUT)["result"])

    def before_restart(self, host: str) -> None:
        self.earlier[host] = self.delta(host)

    def after_restart(self, host: str) -> None:
        self.base[host] = self.read(host)

    def delta(self, host: str) -> dict[str, int]:
        now, base, earlier = self.read(host), self.base[host], self.earlier[host]
        return {k: now[k] - base.get(k, 0) + earlier.get(k, 0) for k in now}


def _drive(scenario: Scenario, lab: ScenarioLab, counters: _Counters) -> list[dict[str, Any]]:
    """Run the steps in order; background calls are awaited at a wait step or at the end."""
    events: list[dict[str, Any]] = []
    pending: list[tuple[str | None, str, int]] = []   # (label, host, call id)
    deadline = time.monotonic() + scenario.timeout

    def left() -> float:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise LabRuntimeError(f"{scenario.id} went over its time limit of {scenario.timeout:g} s",
                                  "a call never returned: see the steps, or raise the scenario's timeout")
        return remaining

    def collect(which: list[tuple[str | None, str, int]]) -> None:
        for item in which:
            pending.remove(item)
            _, host, call_id = item
            try:
                events.append(lab.agent(host).result(call_id, min(STEP_TIMEOUT, left())))
            except LabRuntimeError:
                left()   # says so if it was the scenario's time limit that ran out
                raise

    for step in scenario.steps:
        if step.kind == "sleep":
            time.sleep(min(step.seconds, left()))
        elif step.kind == "wait":
            collect([p for p in pending if step.label is None or p[0] == step.label])
        elif step.kind == "restart":
            assert step.host is not None
            collect([p for p in pending if p[1] == step.host])
            counters.before_restart(step.host)
            t = time.time()
            lab.restart(step.host)
            counters.after_restart(step.host)
            events.append({"host": step.host, "call": "restart", "sock": None, "start": t, "end": time.time(),
                           "ok": True, "result": None, "errno": None, "error": None})
        else:
            assert step.host is not None and step.call is not None
            call_id = lab.agent(step.host).send(step.call, _agent_args(step, lab))
            item = (step.label, step.host, call_id)
            pending.append(item)
            if not step.background:
                collect([item])
    collect(list(pending))
    return sorted(events, key=lambda e: (e.get("start", 0), e.get("id", 0)))


def _lab(client: docker.DockerClient, images: ImageSet, topology: Topology, scenario: Scenario, run_id: str,
         reaper: engine.Reaper | None) -> ScenarioLab:
    return ScenarioLab(client, images, topology, run_id, scenario.id, scenario.hosts, scenario.capture,
                       scenario.sysctls, reaper)


def run_scenario(client: docker.DockerClient, images: ImageSet, topology: Topology, scenario: Scenario,
                 run_id: str, progress: Progress, reaper: engine.Reaper | None = None,
                 lab: ScenarioLab | None = None, on_steps: Callable[[], None] | None = None) -> ScenarioResult:
    """Run one scenario on the engine and check what it observed. Lab errors end up in `error`.

    With a `reaper` its containers and network are removed in the background
    once the captures are in; without, before this returns. `lab` is one made
    (and perhaps prepared) ahead; `on_steps` is called as the steps begin.
    """
    result = ScenarioResult(scenario=scenario, started=time.time())
    say = lambda msg: progress(scenario.id, msg)  # noqa: E731
    t0 = mark = time.monotonic()

    def phase(name: str) -> None:
        nonlocal mark
        now = time.monotonic()
        result.timings[name] = round(now - mark, 3)
        mark = now

    try:
        with lab or _lab(client, images, topology, scenario, run_id, reaper) as lab:
            result.hosts = {h: lab.address(h) for h in scenario.hosts}
            for f in scenario.files:
                answer = lab.agent(f.host).call("put_file", {"path": f.path, "data": base64.b64encode(f.content).decode()},
                                                STEP_TIMEOUT)
                if not answer["ok"]:
                    raise LabRuntimeError(f"cannot copy {f.name} into {f.host}: {answer['error']}")
            say("hosts up, capturing")
            counters = _Counters(lab, scenario.hosts)
            phase("setup")
            if on_steps is not None:
                on_steps()
            result.events = _drive(scenario, lab, counters)
            phase("steps")
            time.sleep(scenario.settle)   # let the last segments (a final RST) reach every capture point
            phase("settle")
            result.counters = {h: counters.delta(h) for h in scenario.hosts}
            files = lab.stop_captures()
            phase("capture")
            say("captures stopped, checking")
        phase("teardown")
        names = {addr: host for host, addr in result.hosts.items()}
        for host, f in files.items():
            # A frame the bridge flooded to this host (its MAC is another's, e.g. while a
            # restarted host's port is relearned) never reached the host's TCP: leave it out.
            result.packets[host] = [p for p in parse_capture_bytes(f.data, f"{host}.pcap").packets
                                    if p.direction != "other"]
            result.capture_stats[host] = {"captured": f.captured, "received": f.received, "dropped": f.dropped}
            result.checks.append(check_capture_integrity(host, f.captured, f.received, f.dropped))
        result.checks += check_scenario(scenario, result.packets, names, result.events, result.counters)
        result.pcaps = {host: f.data for host, f in files.items()}
    except LabRuntimeError as exc:
        result.error = exc.line()
    result.duration = time.monotonic() - t0
    return result


def default_jobs() -> int:
    """Scenarios mostly wait on kernel timers, so twice the cores keeps the machine busy without crowding it."""
    return max(1, min(8, 2 * (os.cpu_count() or 1)))


class _Ahead:
    """Prepares the labs of waiting scenarios while the running ones wait on kernel timers.

    When a running scenario's steps begin, the first queued scenario neither
    started nor prepared gets its network and containers created (not started:
    no namespace exists, nothing runs), at most `limit` waiting at a time. Its
    worker then only has to start them.
    """

    def __init__(self, make: Callable[[Scenario], ScenarioLab], scenarios: Sequence[Scenario], limit: int) -> None:
        self._make = make
        self._waiting = list(scenarios)
        self._limit = limit
        self._lock = threading.Lock()
        self._ready: dict[str, ScenarioLab] = {}
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ahead")

    def take(self, scenario: Scenario) -> ScenarioLab | None:
        """The scenario starts now: its lab if prepared (or being prepared)."""
        with self._lock:
            self._waiting.remove(scenario)
            return self._ready.pop(scenario.id, None)

    def steps_began(self) -> None:
        with self._lock:
            upcoming = [s for s in self._waiting if s.id not in self._ready]
            if not upcoming or len(self._ready) >= self._limit:
                return
            lab = self._ready[upcoming[0].id] = self._make(upcoming[0])
        lab.prepare_ahead(self._pool)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def run_many(client: docker.DockerClient, images: ImageSet, topology: Topology, scenarios: Sequence[Scenario],
             run_id: str, jobs: int, progress: Progress,
             on_result: Callable[[ScenarioResult], None]) -> list[ScenarioResult]:
    """Run scenarios `jobs` at a time; results in the order given.

    On Ctrl-C (KeyboardInterrupt in the calling thread) nothing new starts, every
    object of the run is removed by label (which also ends the scenarios still
    running: their agents lose their hosts), and the interrupt is raised again.
    """
    results: dict[str, ScenarioResult] = {}
    lock = threading.Lock()
    reaper = engine.Reaper(client)
    ahead = _Ahead(lambda s: _lab(client, images, topology, s, run_id, reaper), scenarios, max(1, jobs))

    def one(scenario: Scenario) -> None:
        result = run_scenario(client, images, topology, scenario, run_id, progress, reaper,
                              ahead.take(scenario), ahead.steps_began)
        with lock:
            results[scenario.id] = result
            on_result(result)

    pool = ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="scenario")
    futures = [pool.submit(one, s) for s in scenarios]
    try:
        for future in futures:
            future.result()
    except BaseException:
        for future in futures:
            future.cancel()
        engine.remove_lab_objects(client, f"{engine.RUN}={run_id}", parallel=True)
        pool.shutdown(wait=True, cancel_futures=True)
        ahead.close()
        reaper.drain()
        engine.remove_until_gone(client, f"{engine.RUN}={run_id}")
        raise
    pool.shutdown(wait=True)
    ahead.close()
    if reaper.drain():   # normally empty: one more sweep of the whole run before giving up
        engine.remove_until_gone(client, f"{engine.RUN}={run_id}")
    return [results[s.id] for s in scenarios]
