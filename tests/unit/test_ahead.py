"""Creating labs ahead: which scenario is prepared when, and how many wait (no Docker)."""
from __future__ import annotations

from concurrent.futures import Executor
from typing import Any

from orchestrator import catalog
from orchestrator.runner import Ahead


class FakeLab:
    def __init__(self, scenario: Any) -> None:
        self.scenario = scenario.id
        self.prepared_in: Executor | None = None

    def prepare_ahead(self, pool: Executor) -> None:
        self.prepared_in = pool


def scenarios() -> list[Any]:
    return catalog.builtin_scenarios(catalog.load_topology())[:5]


def test_the_first_waiting_scenario_is_prepared_when_steps_begin() -> None:
    s = scenarios()
    ahead = Ahead(FakeLab, s, limit=1)   # type: ignore[arg-type]
    assert ahead.take(s[0]) is None, "nothing is prepared before any steps began"
    ahead.steps_began()
    lab = ahead.take(s[1])
    assert isinstance(lab, FakeLab) and lab.scenario == s[1].id and lab.prepared_in is not None
    ahead.close()


def test_at_most_limit_labs_wait_and_started_scenarios_are_skipped() -> None:
    s = scenarios()
    made: list[FakeLab] = []
    ahead = Ahead(lambda sc: made.append(FakeLab(sc)) or made[-1], s, limit=2)   # type: ignore[arg-type]
    ahead.take(s[0])
    ahead.take(s[1])                      # started before anything was prepared for it
    for _ in range(4):
        ahead.steps_began()
    assert ahead.take(s[2]).scenario == s[2].id   # type: ignore[union-attr]
    assert ahead.take(s[3]).scenario == s[3].id   # type: ignore[union-attr]
    assert ahead.take(s[4]) is None, "the limit held: s4 was never prepared"
    ahead.steps_began()                   # nothing is waiting any more
    assert [lab.scenario for lab in made] == [s[2].id, s[3].id]
    ahead.close()
