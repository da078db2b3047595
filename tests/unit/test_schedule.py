"""How `run_many` schedules a run: the longest first, many waiting on timers, few labs starting (no Docker)."""
from __future__ import annotations

import threading
import time
from typing import Any

from orchestrator.model import CallStep, Scenario
from orchestrator.runner import run_many
from orchestrator.schedule import start_order
from tests.unit.test_drive import FakeAgent, FakeClock, FakeLab, FakeRun, scenario


def named(*ids: str) -> list[Scenario]:
    base = scenario(CallStep(host="client", call="socket", args={"sock": "c"}))
    return [Scenario(**{**base.__dict__, "id": name}) for name in ids]


def test_the_longest_start_first_and_one_never_run_before_counts_as_longest() -> None:
    s = named("short", "long", "new", "middle", "also-short")
    expected = {"short": 1.0, "long": 9.0, "middle": 4.0, "also-short": 1.0}
    assert [x.id for x in start_order(s, expected)] == ["new", "long", "middle", "short", "also-short"]


def test_run_many_starts_the_longest_first_and_gives_results_in_the_order_given() -> None:
    labs = FakeRun(FakeClock(), broken=set())
    s = named("a", "b", "c")
    results = run_many(labs, s, 1, expected={"a": 1.0, "b": 3.0, "c": 2.0})
    assert labs.made == ["b", "c", "a"]
    assert [r.scenario.id for r in results] == ["a", "b", "c"]


class SlowStartAgent(FakeAgent):
    """A step call that returns only once `together` scenarios are in their steps at the same time."""

    def __init__(self, lab: FakeLab, host: str, together: threading.Barrier) -> None:
        super().__init__(lab, host)
        self.together = together

    def result(self, call_id: int, timeout: float) -> Any:
        call = self.sent[call_id][0]
        if call != "counters":
            self.together.wait(timeout=10)   # raises BrokenBarrierError if they never are
        return super().result(call_id, timeout)


def test_many_scenarios_wait_on_their_steps_while_at_most_starting_labs_start() -> None:
    lock = threading.Lock()
    starting = [0, 0]                       # now, most at once
    together = threading.Barrier(4)         # 4 scenarios in their steps at once: more than may start at once

    class SlowStartLab(FakeLab):
        def __init__(self, clock: FakeClock) -> None:
            super().__init__(clock, ("client", "server"))
            self.agents = {h: SlowStartAgent(self, h, together) for h in self.hosts}

        def __enter__(self) -> SlowStartLab:
            with lock:
                starting[0] += 1
                starting[1] = max(starting)
            time.sleep(0.05)                # the engine's start: others would crowd in now if they could
            with lock:
                starting[0] -= 1
            return self

    class SlowStartRun(FakeRun):
        def make(self, s: Scenario) -> FakeLab:
            self.made.append(s.id)
            return SlowStartLab(self.clock)

    labs = SlowStartRun(FakeClock(), broken=set())
    results = run_many(labs, named("a", "b", "c", "d"), 4, starting=2)
    assert [r.verdict for r in results] == ["passed"] * 4, [r.error for r in results]
    assert starting[1] == 2

