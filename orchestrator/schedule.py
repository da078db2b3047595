"""How many scenarios run and start at once, and in which order: small, so that the command layer
can choose the first labs to create before it loads the runner."""
from __future__ import annotations

import os
from typing import Mapping, Sequence

from .model import Scenario


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

