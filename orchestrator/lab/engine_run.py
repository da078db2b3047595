"""One run's labs on the Docker engine: a `ScenarioLab` per scenario, removed by the run's label.

The `LabRun` the runner is given (lab/protocol.py): finished scenarios are
removed in the background by a `Reaper` while the next ones start; at the end
(or on Ctrl-C) everything carrying the run's label goes. Where several of the
run's scenarios have one shape, a finished scenario's hosts, reset and found
pristine, are handed to the next one of that shape instead (lab/reuse.py).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

import docker

from ..model import Scenario
from ..schedule import Shape, recurring, shape_of
from ..topology import Topology
from . import engine
from .images import ImageSet
from .reuse import IdleLabs
from .scenario_lab import ScenarioLab


class EngineRun:
    """Makes the scenario labs of run `run_id` and removes whatever they leave."""

    def __init__(self, client: docker.DockerClient, images: ImageSet, topology: Topology, run_id: str,
                 scenarios: Sequence[Scenario] = (), reuse: bool = True) -> None:
        """`scenarios`: the run's, whose recurring shapes make reusable labs (none with `reuse` False)."""
        self.client = client
        self.images = images
        self.topology = topology
        self.run_id = run_id
        self.reaper = engine.Reaper(client)
        self._selector = f"{engine.RUN}={run_id}"
        self._interrupted = False
        self._early: dict[str, ScenarioLab] = {}
        self._early_pool: ThreadPoolExecutor | None = None
        self._recurring: set[Shape] = recurring(scenarios) if reuse else set()
        self.idle: IdleLabs[ScenarioLab] = IdleLabs()

    def start_early(self, scenarios: Sequence[Scenario]) -> None:
        """Bring these scenarios' labs up now, in the background, while the run sets up (engine info,
        witness, display); `make` hands each its lab, which the runner enters once it is up.

        Their hosts send nothing until the steps begin, so a capture starting earlier changes nothing.
        """
        if not scenarios:
            return
        self._early_pool = ThreadPoolExecutor(max_workers=len(scenarios), thread_name_prefix="early")
        for scenario in scenarios:
            lab = self._early[scenario.id] = self.make(scenario)
            lab.start_ahead(self._early_pool)

    def make(self, scenario: Scenario) -> ScenarioLab:
        early = self._early.pop(scenario.id, None)
        if early is not None:
            return early
        shape = shape_of(scenario)
        waiting = self.idle.take(shape)
        if waiting is not None:
            return waiting.handed_to(scenario)
        keep = (lambda lab: self.idle.put(shape, lab)) if shape in self._recurring else None
        return ScenarioLab(self.client, self.images, self.topology, self.run_id, scenario, self.reaper, keep)

    def remove_everything(self) -> None:
        self.idle.close()
        engine.remove_lab_objects(self.client, self._selector, parallel=True)
        self._interrupted = True

    def finish(self) -> None:
        if self._early_pool is not None:   # a lab still coming up must not create anything after the sweep
            self._early_pool.shutdown(wait=True)
        for lab in self.idle.close():   # no scenario is left to take them (one being reset now is removed)
            lab.down()
        left = self.reaper.drain()
        if left or self._interrupted or self._early:   # normally nothing: one more sweep before giving up
            engine.remove_until_gone(self.client, self._selector)
