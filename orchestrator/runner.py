"""Running scenarios: realise each one's lab, drive the steps, capture, check.

The runner never prints and never touches Docker: it talks to labs through the
`Lab`/`LabRun` protocols (lab/protocol.py), to time through a `Clock`, reports
what it is doing as `Progress` events and returns `ScenarioResult`s. The
command layer decides how to show them.
"""
from __future__ import annotations

import base64
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Literal, Mapping, Sequence

from .capture import parse_capture_bytes
from .drive import STEP_TIMEOUT, Counters, drive
from .errors import LabRuntimeError
from .lab.protocol import Clock, Lab, LabRun, SystemClock, Witness
from .model import Scenario, Step
from .result import ScenarioResult
from .schedule import Lanes, start_order, starting_at_once
from .verify import check_capture_integrity, check_scenario
from .witness import reasons_by_host, witness_packets

Phase = Literal["waiting", "creating", "capturing", "step", "checking", "done"]


@dataclass(frozen=True)
class Progress:
    """What a scenario is doing now: the runner emits these, the command layer shows them.

    `step` and `index` are set in the `step` phase; `result` in the `done` phase.
    """

    scenario: Scenario
    phase: Phase
    at: float                          # the clock's monotonic time
    index: int = -1
    step: Step | None = None
    result: ScenarioResult | None = None


OnProgress = Callable[[Progress], None]


def _ignore(progress: Progress) -> None:
    pass


def run_scenario(lab: Lab, scenario: Scenario, clock: Clock | None = None, on_progress: OnProgress = _ignore,
                 on_steps: Callable[[], None] | None = None, witness: Witness | None = None) -> ScenarioResult:
    """Run one scenario on its lab and check what it observed. Lab failures end up in `error`.

    `on_steps` is called as the steps begin (the run then prepares a waiting
    scenario's lab while this one waits on kernel timers). `witness` gives the
    kernel's own record of the RSTs sent while the steps ran and the captures
    were on (not the teardown's: killing a host closes its sockets).
    """
    clock = clock or SystemClock()
    result = ScenarioResult(scenario=scenario, started=clock.time())
    t0 = mark = clock.monotonic()

    def phase(name: str) -> None:
        nonlocal mark
        now = clock.monotonic()
        result.timings[name] = round(now - mark, 3)
        mark = now

    def say(name: Phase, index: int = -1, step: Step | None = None) -> None:
        on_progress(Progress(scenario, name, clock.monotonic(), index, step))

    say("creating")
    result.ran_after = lab.history
    try:
        with lab:
            try:
                result.addresses = {h: lab.addresses[h] for h in scenario.hosts}
                for hf in scenario.files:
                    answer = lab.agent(hf.host).call(
                        "put_file", {"path": hf.path, "data": base64.b64encode(hf.content).decode(), "mode": hf.mode},
                        STEP_TIMEOUT)
                    if not answer["ok"]:
                        raise LabRuntimeError(f"cannot copy {hf.name} into {hf.host}: {answer['error']}")
                say("capturing")
                counters = Counters(lab, scenario.hosts)
                phase("setup")
                if on_steps is not None:
                    on_steps()
                watched_from = clock.monotonic()
                result.events = drive(scenario, lab, counters, clock,
                                      lambda index, step: say("step", index, step))
                phase("steps")
                lab.settle(scenario.settle, clock)   # the last segments (a final RST) reach every capture point
                phase("settle")
                result.counters = {h: counters.delta(h) for h in scenario.hosts}
                say("checking")
                captures = lab.stop_captures()
                watched_to = clock.monotonic()
                phase("capture")
                # checked after the captures stopped, so that it costs the timing of none of them:
                # a host cut off or a capture gone would make the checks lie
                fault = lab.fault()
                if fault is not None:
                    raise fault
            except LabRuntimeError as exc:
                raise (lab.fault() or exc) from None
        phase("teardown")
        result.hosts_kept, result.not_kept = lab.kept, dict(lab.not_kept)
        names = result.names
        for host, capture in captures.items():
            # A frame the bridge flooded to this host (its MAC is another's, e.g. while a
            # restarted host's port is relearned) never reached the host's TCP: leave it out.
            result.packets[host] = [p for p in parse_capture_bytes(capture.data, f"{host}.pcap").packets
                                    if p.direction != "other"]
            result.capture_stats[host] = {"captured": capture.captured, "received": capture.received,
                                          "dropped": capture.dropped}
            result.checks.append(check_capture_integrity(host, capture.captured, capture.received, capture.dropped))
        reasons = _witness(result, witness, watched_from, watched_to)
        result.checks += check_scenario(scenario, result.packets, names, result.events, result.counters,
                                        reasons, result.unwitnessed or "")
        result.pcaps = {host: capture.data for host, capture in captures.items()}
    except LabRuntimeError as exc:
        result.error = exc.line()
    result.duration = clock.monotonic() - t0
    return result


def _witness(result: ScenarioResult, witness: Witness | None, start: float, end: float) -> dict[str, list[str]] | None:
    """The kernel's events of the scenario into `result`, each wire RST given its word; the reasons per host."""
    events = witness.events(result.addresses.values(), start, end) if witness is not None else None
    if events is None:
        result.unwitnessed = (witness.unavailable if witness is not None else None) or "the kernel was not watched"
        return None
    result.kernel_events = events
    result.rst_witness = {point: witness_packets(packets, events, result.addresses)
                          for point, packets in result.packets.items()}
    return reasons_by_host(events, result.addresses)


class Ahead:
    """Prepares the labs of waiting scenarios while the running ones wait on kernel timers.

    When a running scenario's steps begin, the first queued scenario neither
    started nor prepared gets its network and containers created (not started:
    no namespace exists, nothing runs), at most `limit` waiting at a time. Its
    worker then only has to start them.
    """

    def __init__(self, make: Callable[[Scenario], Lab], scenarios: Sequence[Scenario], limit: int,
                 eligible: Callable[[Scenario], bool] = lambda s: True) -> None:
        """Only `eligible` scenarios get a lab made ahead (not one a lane's lab will take: Lanes)."""
        self._make = make
        self._eligible = eligible
        self._waiting = list(scenarios)
        self._limit = limit
        self._lock = threading.Lock()
        self._ready: dict[str, Lab] = {}
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ahead")

    def take(self, scenario: Scenario) -> Lab | None:
        """The scenario starts now: its lab if prepared (or being prepared)."""
        with self._lock:
            self._waiting.remove(scenario)
            return self._ready.pop(scenario.id, None)

    def steps_began(self) -> None:
        with self._lock:
            upcoming = [s for s in self._waiting if s.id not in self._ready and self._eligible(s)]
            if not upcoming or len(self._ready) >= self._limit:
                return
            lab = self._ready[upcoming[0].id] = self._make(upcoming[0])
            # under the lock: a worker that takes this lab must find it preparing, or it would
            # create the network a second time itself
            lab.prepare_ahead(self._pool)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def run_many(labs: LabRun, scenarios: Sequence[Scenario], jobs: int, on_progress: OnProgress = _ignore,
             clock: Clock | None = None, witness: Witness | None = None,
             expected: Mapping[str, float] | None = None, starting: int | None = None,
             finish: bool = True, reuse: bool = True) -> list[ScenarioResult]:
    """Run scenarios `jobs` at a time, at most `starting` of them bringing their labs up at once
    (default: the CPU count); results in the order given.

    A scenario waiting on the kernel's timers costs nothing, its lab's start costs the engine: so the
    scenarios in their steps are many, the labs starting few (their starts do not crowd each other,
    nor the steps of the others). With `expected` (each scenario's duration when last run), the
    longest start first (`start_order`), so their waits overlap the short ones' starts.
    Each finished scenario is announced as a `done` Progress carrying its result.
    On Ctrl-C (KeyboardInterrupt in the calling thread) nothing new starts, every
    object of the run is removed by label (which also ends the scenarios still
    running: their agents lose their hosts), and the interrupt is raised again.
    With `finish` False the last scenarios' removals may still be going when it returns: the caller
    waits for them (`labs.finish()`) once it has done what needs no engine.
    """
    clock = clock or SystemClock()
    results: dict[str, ScenarioResult] = {}
    lock = threading.Lock()
    started = start_order(scenarios, expected) if expected is not None else list(scenarios)
    lanes = Lanes(started, reuse)
    ahead = Ahead(labs.make, started, max(1, jobs), lanes.starts_fresh)
    for s in scenarios:
        on_progress(Progress(s, "waiting", clock.monotonic()))

    interrupted = threading.Event()
    gate = threading.BoundedSemaphore(starting_at_once(jobs, starting))

    def one(scenario: Scenario) -> None:
        gate.acquire()
        held = True                   # this scenario's place among the labs starting, until its steps begin

        def steps_began() -> None:
            nonlocal held
            ahead.steps_began()
            if held:
                held = False
                gate.release()

        try:
            if interrupted.is_set():
                return
            lab = ahead.take(scenario) or labs.make(scenario)
            result = run_scenario(lab, scenario, clock, on_progress, steps_began, witness)
        finally:
            if held:
                gate.release()
        with lock:
            results[scenario.id] = result
            if not interrupted.is_set():   # a scenario ended by the interrupt's removal has nothing to say
                on_progress(Progress(scenario, "done", clock.monotonic(), result=result))

    def worker() -> None:
        """Scenarios one after another, as the lanes hand them out (the next of a shape on the same hosts)."""
        scenario = lanes.next()
        while scenario is not None and not interrupted.is_set():
            one(scenario)
            scenario = lanes.next(scenario)

    workers = max(1, min(jobs, len(started)))
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="scenario")
    futures: list[Future[None]] = [pool.submit(worker) for _ in range(workers)]
    try:
        for future in futures:
            future.result()
    except BaseException:
        interrupted.set()
        for future in futures:
            future.cancel()
        labs.remove_everything()
        pool.shutdown(wait=True, cancel_futures=True)
        ahead.close()
        labs.finish()
        raise
    pool.shutdown(wait=True)
    ahead.close()
    if finish:
        labs.finish()
    return [results[s.id] for s in scenarios]
