"""EngineRun.prepare_early: the first labs are created while the run sets up, handed out by `make`, and
swept at `finish` when the run never took them (fake engine, no Docker)."""
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
    """Stands for ScenarioLab: `prepare` makes the scenario's network on the fake engine once let go."""

    made: ClassVar[list[SlowLab]] = []
    let_go = threading.Event()

    def __init__(self, client: FakeClient, images: Any, topology: Any, run_id: str, scenario: Any,
                 reaper: Any = None) -> None:
        self.client, self.run_id, self.scenario = client, run_id, scenario.id
        self.prepared = 0
        self.captures: bool | None = None
        SlowLab.made.append(self)

    def prepare_ahead(self, pool: Executor, captures: bool = True) -> None:
        self.captures = captures
        pool.submit(self.prepare)

    def prepare(self) -> None:
        assert SlowLab.let_go.wait(5)
        self.prepared += 1
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


def test_make_hands_out_the_lab_prepared_early_and_makes_the_others() -> None:
    labs, _, scenarios = run()
    labs.prepare_early(scenarios[:2])
    assert [lab.captures for lab in SlowLab.made] == [False, False], "captures are created as their hosts start"
    early = SlowLab.made[1]
    assert labs.make(scenarios[1]) is early
    assert labs.make(scenarios[1]) is not early, "handed out once"
    assert labs.make(scenarios[2]).scenario == scenarios[2].id
    SlowLab.let_go.set()
    labs.finish()


def test_finish_waits_for_the_preparations_and_sweeps_labs_never_taken() -> None:
    labs, client, scenarios = run()
    labs.prepare_early(scenarios[:2])
    labs.remove_everything()    # interrupted before the run took them: nothing made yet to remove
    SlowLab.let_go.set()        # the preparations go on and make their networks after that sweep
    labs.finish()
    assert all(lab.prepared == 1 for lab in SlowLab.made)
    assert engine.lab_objects(client) == []  # type: ignore[arg-type]
