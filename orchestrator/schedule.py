"""How many scenarios run and start at once, and in which order: small, so that the command layer
can choose the first labs to create before it loads the runner."""
from __future__ import annotations

import math
import os
import threading
from collections import Counter
from typing import Iterable, Mapping, Sequence

from .model import Scenario

Shape = tuple[tuple[str, ...], tuple[tuple[str, tuple[tuple[str, str], ...]], ...]]
# scenarios one lab runs in turn, about, where several have its shape (its hosts, reset between them)
PER_LANE = 3


def default_jobs() -> int:
    """Scenarios mostly wait on kernel timers, so eight per core keep the engine busy while they wait;
    only a core's worth start their labs at a time (`run_many`), so they do not crowd it. Measured on
    2 cores, alternated: 16 at a time beat 8 by about a second of a 20-25 s `all`; 24 gained no more."""
    return max(1, min(16, 8 * (os.cpu_count() or 1)))


def starting_at_once(jobs: int, starting: int | None = None) -> int:
    """How many scenarios bring their labs up at once: `starting`, by default the CPU count (at most `jobs`)."""
    return max(1, min(jobs, starting or os.cpu_count() or 1))


def start_order(scenarios: Sequence[Scenario], expected: Mapping[str, float]) -> list[Scenario]:
    """The longest first (by `expected` seconds; one never run before counts as longest), so that a run
    does not end waiting on a long scenario started last while the others are done."""
    return sorted(scenarios, key=lambda s: -expected.get(s.id, float("inf")))



def shape_of(scenario: Scenario) -> Shape:
    """What a lab must match to take the scenario: its hosts, and the sysctls each is created with."""
    sysctls = tuple(sorted((host, tuple(sorted(values.items()))) for host, values in scenario.sysctls.items()
                           if values and host in scenario.hosts))
    return tuple(sorted(scenario.hosts)), sysctls


def recurring(scenarios: Iterable[Scenario]) -> set[Shape]:
    """The shapes more than one of these scenarios has: only their labs can be reused."""
    counts = Counter(shape_of(s) for s in scenarios)
    return {shape for shape, n in counts.items() if n > 1}


class Lanes:
    """Which scenario a free worker takes next, so that labs get reused (lab/reuse.py).

    A recurring shape's scenarios run in lanes, about PER_LANE to a lane: a
    worker that finished one takes the next of its shape, on the same hosts,
    and no more of a shape's scenarios start on new hosts than it has lanes.
    Others, and workers with no lane to go on, take the first waiting scenario
    in the given order. With `reuse` False every scenario is its own lane.
    """

    def __init__(self, scenarios: Sequence[Scenario], reuse: bool = True, per_lane: int = PER_LANE) -> None:
        self._waiting = list(scenarios)
        self._lock = threading.Lock()
        counts = Counter(shape_of(s) for s in scenarios)
        self._lanes = {shape: math.ceil(n / per_lane) for shape, n in counts.items() if n > 1 and reuse}
        self._open: Counter[Shape] = Counter()

    def next(self, finished: Scenario | None = None) -> Scenario | None:
        """The scenario to run after `finished` (None: a worker's first); None when none is left for it."""
        with self._lock:
            if finished is not None and shape_of(finished) in self._lanes:
                shape = shape_of(finished)
                same = next((s for s in self._waiting if shape_of(s) == shape), None)
                if same is not None:
                    self._waiting.remove(same)
                    return same
                self._open[shape] -= 1
            for s in self._waiting:
                shape = shape_of(s)
                if shape not in self._lanes or self._open[shape] < self._lanes[shape]:
                    self._waiting.remove(s)
                    if shape in self._lanes:
                        self._open[shape] += 1
                    return s
            return None

    def starts_fresh(self, scenario: Scenario) -> bool:
        """Whether the waiting `scenario` would start on new hosts, not on a lane's (so its lab may be made ahead)."""
        with self._lock:
            shape = shape_of(scenario)
            if shape not in self._lanes:
                return True
            ahead_of_it = [s for s in self._waiting[:self._waiting.index(scenario)] if shape_of(s) == shape] \
                if scenario in self._waiting else []
            return self._open[shape] + len(ahead_of_it) < self._lanes[shape]
