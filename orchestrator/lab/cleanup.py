"""`clean`: remove every object labelled rstlab.run, and say what the engine would not remove, why, and what to do.

`engine.remove_lab_objects` tries each object once and returns what went; `clean`
retries what stays (a container still going can hold its network's endpoint a
moment) and then asks the engine for each leftover's reason. The one seen here:
Docker 20.10 refuses to remove a network that "has active endpoints" although no
container is attached to it (a stale endpoint, moby#42119 and moby#43286); nothing
but restarting the daemon clears it. Such a network keeps its subnet of the lab's
range, so a leftover is the environment's problem (exit 3), not a passing note.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import docker
import docker.errors

from ..errors import LabRuntimeError
from . import engine
from .engine import LabObject

RESTART = "restart the Docker daemon (it ends every running container), then run clean again"


@dataclass(frozen=True)
class Leftover:
    """An object `clean` could not remove: the engine's reason and what to do."""

    obj: LabObject
    reason: str
    remedy: str

    def line(self) -> str:
        run = f" (run {self.obj.run_id})" if self.obj.run_id else ""
        return f"could not remove {self.obj.kind} {self.obj.name}{run}: {self.reason} ({self.remedy})"


@dataclass
class Cleanup:
    """What `clean` removed and what it could not."""

    removed: list[LabObject] = field(default_factory=list)
    left: list[Leftover] = field(default_factory=list)

    def count(self, kind: str) -> int:
        return sum(1 for o in self.removed if o.kind == kind)


def _remove(client: docker.DockerClient, obj: LabObject) -> str | None:
    """None when the object went (or was gone already); else the engine's reason for refusing.

    A timeout or a lost connection is no refusal: it raises, as every engine call does.
    """
    with engine.engine_call(f"cannot remove {obj.kind} {obj.name}"):
        try:
            if obj.kind == "container":
                client.api.remove_container(obj.id, force=True, v=True)
            else:
                client.api.remove_network(obj.id)
        except docker.errors.NotFound:
            return None
        except docker.errors.APIError as exc:
            return engine.explanation(exc)
    return None


def _attached(client: docker.DockerClient, network: LabObject) -> list[str] | None:
    """The names of the endpoints the engine says a network has; None when it cannot say."""
    try:
        with engine.engine_call(f"cannot inspect network {network.name}"):
            found = client.api.inspect_network(network.id)
    except LabRuntimeError:
        return None
    endpoints = (found or {}).get("Containers") or {}
    return sorted(str((e or {}).get("Name") or cid[:12]) for cid, e in endpoints.items())


def remedy(client: docker.DockerClient, obj: LabObject, reason: str) -> str:
    """What a person can do about a leftover, from what the engine says about it."""
    if obj.kind == "container":
        if "removal" in reason and "in progress" in reason:
            return "the engine is still removing it: run clean again in a moment"
        return f"`docker rm -f {obj.name}` shows the engine's error; if it stays, {RESTART}"
    if "active endpoints" not in reason:
        return f"`docker network inspect {obj.name}` shows what holds it; if nothing does, {RESTART}"
    attached = _attached(client, obj)
    if attached is None:
        return f"`docker network inspect {obj.name}` lists its endpoints; if none, {RESTART}"
    if attached:
        return (f"still attached: {', '.join(attached)}: `docker network disconnect --force {obj.name} NAME` "
                "for each, then run clean again")
    return f"no container is attached: a stale endpoint the engine keeps (Docker 20.10, moby#42119); {RESTART}"


def clean(client: docker.DockerClient, *selectors: str, attempts: int = 3, pause: float = 1.0,
          sleep: Callable[[float], None] = time.sleep) -> Cleanup:
    """Remove every lab object (matching `selectors`): containers, then networks; retry what stays, then
    report each leftover with the engine's reason and a remedy."""
    done = Cleanup(engine.remove_lab_objects(client, *selectors))
    reasons: dict[str, str] = {}
    for attempt in range(attempts):
        left = engine.lab_objects(client, *selectors)
        if not left:
            return done
        if attempt == attempts - 1:
            break
        if reasons:
            sleep(pause)
        for obj in left:   # containers first: a network frees up once they are gone
            reason = _remove(client, obj)
            if reason is None:
                done.removed.append(obj)
                reasons.pop(obj.id, None)
            else:
                reasons[obj.id] = reason
    for obj in left:
        if obj.id in reasons:
            done.left.append(Leftover(obj, reasons[obj.id], remedy(client, obj, reasons[obj.id])))
        else:
            done.left.append(Leftover(obj, "it appeared while clean ran",
                                      "another run is going on: run clean again once it has ended"))
    return done
