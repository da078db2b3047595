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
    results = run_many(labs, named("a", "b", "c", "d"), 4, starting=2, reuse=False)
    assert [r.verdict for r in results] == ["passed"] * 4, [r.error for r in results]
    assert starting[1] == 2



def shaped(name: str, hosts: tuple[str, ...], sysctls: dict[str, dict[str, str]] | None = None) -> Scenario:
    base = named(name)[0]
    return Scenario(**{**base.__dict__, "hosts": hosts, "sysctls": sysctls or {}})


def test_a_shape_is_the_hosts_and_their_sysctls_and_only_recurring_shapes_can_reuse() -> None:
    from orchestrator.schedule import recurring, shape_of

    a = shaped("a", ("client", "server"))
    b = shaped("b", ("server", "client"))
    c = shaped("c", ("client", "server"), {"client": {"net.ipv4.tcp_fin_timeout": "2"}})
    d = shaped("d", ("client", "router", "server"))
    assert shape_of(a) == shape_of(b) != shape_of(c)
    assert recurring([a, b, c, d]) == {shape_of(a)}


def test_lanes_hand_a_worker_the_next_scenario_of_its_shape_and_open_no_more_lanes_than_allowed() -> None:
    from orchestrator.schedule import Lanes

    cs = [shaped(f"cs{n}", ("client", "server")) for n in range(5)]        # 2 lanes of about 3
    lone = shaped("lone", ("client", "winhost"))
    lanes = Lanes([*cs, lone], per_lane=3)
    first, second, third = lanes.next(), lanes.next(), lanes.next()
    assert [s.id for s in (first, second, third)] == ["cs0", "cs1", "lone"]   # the third would be a third lane
    assert lanes.next() is None                        # a free worker: nothing it may start on new hosts
    assert lanes.next(first).id == "cs2"               # cs0's worker goes on, on cs0's hosts
    assert lanes.next(second).id == "cs3"
    assert lanes.next(third) is None                   # the lone scenario's worker has no lane to go on
    assert lanes.next(cs[2]).id == "cs4"
    assert lanes.next(cs[4]) is None and lanes.next(cs[3]) is None


def test_without_reuse_every_scenario_starts_on_new_hosts_at_once() -> None:
    from orchestrator.schedule import Lanes

    cs = [shaped(f"cs{n}", ("client", "server")) for n in range(4)]
    lanes = Lanes(cs, reuse=False)
    assert [lanes.next().id for _ in range(4)] == ["cs0", "cs1", "cs2", "cs3"]   # type: ignore[union-attr]
    assert all(lanes.starts_fresh(s) for s in cs)


def test_only_a_scenario_that_opens_a_lane_may_have_its_lab_made_ahead() -> None:
    from orchestrator.schedule import Lanes

    cs = [shaped(f"cs{n}", ("client", "server")) for n in range(6)]        # 2 lanes
    lanes = Lanes(cs, per_lane=3)
    assert [lanes.starts_fresh(s) for s in cs] == [True, True, False, False, False, False]
    lanes.next()
    assert [lanes.starts_fresh(s) for s in cs[1:]] == [True, False, False, False, False]


def test_a_run_runs_one_lanes_scenarios_one_after_another() -> None:
    """Three scenarios of one shape make one lane: never two at once, even with four workers."""
    lock = threading.Lock()
    inside = [0, 0]                           # now, most at once

    class CountingLab(FakeLab):
        def __enter__(self) -> CountingLab:
            with lock:
                inside[0] += 1
                inside[1] = max(inside)
            time.sleep(0.02)
            return self

        def __exit__(self, *exc: object) -> None:
            with lock:
                inside[0] -= 1

    class CountingRun(FakeRun):
        def make(self, s: Scenario) -> FakeLab:
            self.made.append(s.id)
            return CountingLab(self.clock)

    labs = CountingRun(FakeClock(), broken=set())
    results = run_many(labs, named("a", "b", "c"), 4)
    assert [r.verdict for r in results] == ["passed"] * 3 and labs.made == ["a", "b", "c"]
    assert inside[1] == 1
