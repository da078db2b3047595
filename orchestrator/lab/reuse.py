"""The finished labs waiting for their run's next scenario of the same shape (issue 19).

A lab's hosts cost the engine far more than anything a scenario does on them,
so a run hands a finished scenario's network and hosts to the next scenario
of the same shape: the same hosts, with the same sysctls (fixed when a
container is created; /proc/sys is read-only inside). Only a lab whose every
host said it is pristine after its scenario (the agent's `reset`:
images/host/rstlab_pristine.py) waits here; its capture sidecars are new for
every scenario. What a shape is, and which scenario goes next on a lab, is
schedule.py's. Pure: no Docker.
"""
from __future__ import annotations

import threading
from typing import Generic, Hashable, TypeVar

L = TypeVar("L")


class IdleLabs(Generic[L]):
    """Finished, pristine labs by shape, until a scenario takes one or the run closes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: dict[Hashable, list[L]] = {}
        self._closed = False

    def put(self, shape: Hashable, lab: L) -> bool:
        """Keep `lab` for the next scenario of `shape`; False once the run closed (remove it instead)."""
        with self._lock:
            if self._closed:
                return False
            self._idle.setdefault(shape, []).append(lab)
            return True

    def take(self, shape: Hashable) -> L | None:
        with self._lock:
            waiting = self._idle.get(shape)
            return waiting.pop() if waiting else None

    def close(self) -> list[L]:
        """No lab is kept from now on; the ones waiting, for their removal."""
        with self._lock:
            self._closed = True
            left = [lab for labs in self._idle.values() for lab in labs]
            self._idle.clear()
            return left
