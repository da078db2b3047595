"""EngineRun.start_early: the first labs come up while the run sets up, are handed out by `make`, and
are swept at `finish` when the run never took them (fake engine, no Docker)."""
from __future__ import annotations

import threading
from concurrent.futures import Executor
from typing import Any, ClassVar

import pytest

from orchestrator import catalog
from orchestrator.lab import engine, engine_run
from orchestrator.lab.engine_run import EngineRun
from orchestrator.lab.images import ImageSet
from tests.unit.test_reaper import FakeClient


class SlowLab:
    """Stands for ScenarioLab: `up` makes the scenario's network on the fake engine once let go."""

    made: ClassVar[list[SlowLab]] = []
    let_go = threading.Event()

    def __init__(self, client: FakeClient, images: Any, topology: Any, run_id: str, scenario: Any,
                 reaper: Any = None, keep: Any = None) -> None:
        self.client, self.run_id, self.scenario = client, run_id, scenario.id
        self.up_times = 0
        self.started_in: Executor | None = None
        SlowLab.made.append(self)

    def start_ahead(self, pool: Executor) -> None:
        self.started_in = pool
        pool.submit(self.up)

    def up(self) -> None:
        assert SlowLab.let_go.wait(5)
        self.up_times += 1
        self.client.api.add("network", f"{self.scenario}-lab", engine.labels(self.run_id, self.scenario))


@pytest.fixture(autouse=True)
def slow_lab(monkeypatch: pytest.MonkeyPatch) -> None:
    SlowLab.made = []
    SlowLab.let_go = threading.Event()
    monkeypatch.setattr(engine_run, "ScenarioLab", SlowLab)


def run() -> tuple[EngineRun, FakeClient, list[Any]]:
    client = FakeClient()
    client.api.go_on.set()
    topology = catalog.load_topology()
    return (EngineRun(client, ImageSet("b", "h"), topology, "run1"), client,  # type: ignore[arg-type]
            catalog.builtin_scenarios(topology)[:3])


def test_make_hands_out_the_lab_started_early_and_makes_the_others() -> None:
    labs, _, scenarios = run()
    labs.start_early(scenarios[:2])
    assert all(lab.started_in is not None for lab in SlowLab.made)
    early = SlowLab.made[1]
    assert labs.make(scenarios[1]) is early
    assert labs.make(scenarios[1]) is not early, "handed out once"
    assert labs.make(scenarios[2]).scenario == scenarios[2].id
    SlowLab.let_go.set()
    labs.finish()


def test_finish_waits_for_labs_coming_up_and_sweeps_those_never_taken() -> None:
    labs, client, scenarios = run()
    labs.start_early(scenarios[:2])
    labs.remove_everything()    # interrupted before the run took them: nothing made yet to remove
    SlowLab.let_go.set()        # the labs go on coming up and make their networks after that sweep
    labs.finish()
    assert all(lab.up_times == 1 for lab in SlowLab.made)
    assert engine.lab_objects(client) == []  # type: ignore[arg-type]


def test_entering_a_lab_started_ahead_waits_for_it_and_brings_up_nothing_more() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from orchestrator.errors import LabRuntimeError
    from orchestrator.lab.scenario_lab import ScenarioLab

    topology = catalog.load_topology()
    for fails in (False, True):
        lab = ScenarioLab(FakeClient(), ImageSet("b", "h"), topology, "run1",  # type: ignore[arg-type]
                          catalog.builtin_scenarios(topology)[0])
        came_up: list[str] = []

        def up(fails: bool = fails, came_up: list[str] = came_up) -> None:
            came_up.append("up")
            if fails:
                raise LabRuntimeError("cannot start host client: no")
        lab._up = up  # type: ignore[method-assign]
        with ThreadPoolExecutor(max_workers=1) as pool:
            lab.start_ahead(pool)
            lab.prepare_ahead(pool)   # the runner's Ahead finding it: nothing more
            lab.start_ahead(pool)
        if fails:
            with pytest.raises(LabRuntimeError, match="no"):
                lab.up()
        else:
            lab.up()
        assert came_up == ["up"]
