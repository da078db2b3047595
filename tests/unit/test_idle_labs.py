"""The finished labs a run keeps for its next scenario of the same shape (lab/reuse.py; no Docker)."""
from __future__ import annotations

import threading

from orchestrator.lab.reuse import IdleLabs


def test_a_kept_lab_goes_to_the_next_scenario_of_its_shape_once() -> None:
    idle: IdleLabs[str] = IdleLabs()
    assert idle.put("client+server", "lab1")
    assert idle.take("client+router+server") is None
    assert idle.take("client+server") == "lab1"
    assert idle.take("client+server") is None


def test_once_the_run_closes_nothing_is_kept_and_the_waiting_labs_are_handed_back_for_removal() -> None:
    idle: IdleLabs[str] = IdleLabs()
    idle.put("a", "lab1")
    idle.put("b", "lab2")
    assert sorted(idle.close()) == ["lab1", "lab2"]
    assert not idle.put("a", "lab3")          # a lab reset after the end is removed, not kept
    assert idle.take("a") is None and idle.close() == []


def test_two_scenarios_never_take_the_same_lab() -> None:
    idle: IdleLabs[int] = IdleLabs()
    for n in range(200):
        idle.put("s", n)
    taken: list[int] = []
    lock = threading.Lock()

    def take_all() -> None:
        while (lab := idle.take("s")) is not None:
            with lock:
                taken.append(lab)
    threads = [threading.Thread(target=take_all) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(taken) == list(range(200))
