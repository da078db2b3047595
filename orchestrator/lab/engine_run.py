"""One run's labs on the Docker engine: a `ScenarioLab` per scenario, removed by the run's label.

The `LabRun` the runner is given (lab/protocol.py): finished scenarios are
removed in the background by a `Reaper` while the next ones start; at the end
(or on Ctrl-C) everything carrying the run's label goes. Where several of the
run's scenarios have one shape, a finished scenario's hosts, reset and found
pristine, are handed to the next one of that shape instead (lab/reuse.py), and
at the end such labs wait on the engine for the next run (lab/pool.py).
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Callable, Sequence

import docker

from ..errors import LabRuntimeError
from ..model import Scenario
from ..schedule import Shape, recurring, shape_of
from ..topology import Topology
from . import engine, pool
from .images import ImageSet
from .reuse import IdleLabs
from .scenario_lab import ScenarioLab


class EngineRun:
    """Makes the scenario labs of run `run_id` and removes whatever they leave."""

    def __init__(self, client: docker.DockerClient, images: ImageSet, topology: Topology, run_id: str,
                 scenarios: Sequence[Scenario] = (), reuse: bool = True, pool_size: int | None = None) -> None:
        """`scenarios`: the run's, whose recurring shapes make reusable labs; `pool_size`: how many labs
        may wait on the engine for the next run (default: pool.pool_size()). With `reuse` False, neither."""
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
        self._pool = (pool.pool_size() if pool_size is None else pool_size) if reuse else 0
        self._lock = threading.Lock()
        self._parked: list[pool.ParkedLab] | None = None   # on the engine, not taken (listed when first needed)
        self.adopted: list[str] = []                       # the ids of the warm labs this run took
        self.parked: list[str] = []                        # the ids of the labs this run left warm

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
        if shape not in self._recurring and not self._pool:
            return ScenarioLab(self.client, self.images, self.topology, self.run_id, scenario, self.reaper)
        label = pool.shape_label(shape)

        def keep(lab: ScenarioLab) -> bool:
            return self.idle.put(shape, lab)
        return (self._warm(scenario, keep, label)
                or ScenarioLab(self.client, self.images, self.topology, self.run_id, scenario, self.reaper, keep, label))

    def _warm(self, scenario: Scenario, keep: Callable[[ScenarioLab], bool], label: str) -> ScenarioLab | None:
        """A lab of this shape that an earlier run left warm, taken; None if there is none (or none usable)."""
        if not self._pool:
            return None
        while True:
            with self._lock:
                if self._parked is None:
                    self._parked = self._list_parked()
                found = next((p for p in self._parked if p.shape == label), None)
                if found is None:
                    return None
                self._parked.remove(found)
            try:
                lab = ScenarioLab.from_parked(self.client, self.images, self.topology, self.run_id, scenario,
                                              self.reaper, keep, found)
            except LabRuntimeError:   # claimed, but gone or changed: removed, and the next one tried
                self.adopted.append(found.lab_id)
                self.reaper.submit(partial(engine.remove_until_gone, self.client, f"{engine.LAB}={found.lab_id}"))
                continue
            if lab is not None:
                self.adopted.append(found.lab_id)
                return lab

    def _list_parked(self) -> list[pool.ParkedLab]:
        """The warm labs on the engine; those of another image of the lab, or with a host stopped, removed."""
        try:
            parked = pool.parked_labs(self.client)
        except LabRuntimeError:
            return []
        usable = [p for p in parked if p.running and p.image == self.images.host]
        for p in parked:
            if p not in usable:
                self.reaper.submit(partial(engine.remove_until_gone, self.client, f"{engine.LAB}={p.lab_id}"))
        return usable

    def remove_everything(self) -> None:
        self.idle.close()
        engine.remove_lab_objects(self.client, self._selector, parallel=True)
        for lab_id in list(self.adopted):   # warm labs it took still carry the run that made them
            engine.remove_lab_objects(self.client, f"{engine.LAB}={lab_id}", parallel=True)
        self._interrupted = True

    def finish(self) -> None:
        if self._early_pool is not None:   # a lab still coming up must not create anything after the sweep
            self._early_pool.shutdown(wait=True)
        idle = self.idle.close()   # no scenario is left to take them (one being reset now is removed)
        room = 0 if self._interrupted else self._pool - self._warm_elsewhere()
        for lab in idle:
            if room > 0 and self._park(lab):
                room -= 1
            else:
                lab.down()
        left = self.reaper.drain()
        if left or self._interrupted or self._early:   # normally nothing: one more sweep before giving up
            for lab_id in set(self.adopted) - set(self.parked):   # taken warm: labelled with another run
                engine.remove_until_gone(self.client, f"{engine.LAB}={lab_id}")
            if not self.parked:
                engine.remove_until_gone(self.client, self._selector)
            else:   # all of the run's but the labs it left warm
                made = {o.lab for o in engine.lab_objects(self.client, self._selector)}
                for lab_id in made - set(self.parked) - {""}:
                    engine.remove_until_gone(self.client, f"{engine.LAB}={lab_id}")

    def _warm_elsewhere(self) -> int:
        """Warm labs on the engine now that this run did not take (another run's, or left untaken)."""
        if not self._pool:
            return 0
        try:
            return len(pool.parked_labs(self.client))
        except LabRuntimeError:
            return self._pool

    def _park(self, lab: ScenarioLab) -> bool:
        try:
            lab.park()
        except LabRuntimeError:
            return False
        self.parked.append(lab.lab_id)
        return True
