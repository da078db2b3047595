"""Connecting to the Docker engine and the labels every lab object carries."""
from __future__ import annotations

import secrets
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

import docker
import docker.errors

from ..errors import EngineUnavailable

RUN = "rstlab.run"
SCENARIO = "rstlab.scenario"
ROLE = "rstlab.role"


ISSUED: list[str] = []   # run ids this process made, so tests can find exactly their own objects


def new_run_id() -> str:
    """A short id that names and labels every object of one run."""
    run_id = secrets.token_hex(4)
    ISSUED.append(run_id)
    return run_id


def labels(run_id: str, scenario: str | None = None, role: str | None = None) -> dict[str, str]:
    out = {RUN: run_id}
    if scenario:
        out[SCENARIO] = scenario
    if role:
        out[ROLE] = role
    return out


def connect(timeout: int = 120) -> docker.DockerClient:
    """A client for the engine DOCKER_HOST names (or the local one); EngineUnavailable if none answers."""
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except (docker.errors.DockerException, OSError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise EngineUnavailable(
            f"no Docker engine reachable ({reason[:160]})",
            "start Docker, or point DOCKER_HOST at a running engine",
        ) from None
    return client


@dataclass(frozen=True)
class LabObject:
    """A container or network on the engine that carries the run label."""

    kind: str
    id: str
    name: str
    run_id: str


def lab_objects(client: docker.DockerClient, *selectors: str) -> list[LabObject]:
    """Containers, then networks, carrying the run label (and any further `label=value` selectors).

    One list call each and no per-object inspection, so objects that other runs
    remove meanwhile cannot make it fail.
    """
    filters = {"label": [RUN, *selectors]}
    found = [LabObject("container", c["Id"], c["Names"][0].lstrip("/"), c["Labels"].get(RUN, ""))
             for c in client.api.containers(all=True, filters=filters)]
    found += [LabObject("network", n["Id"], n["Name"], (n.get("Labels") or {}).get(RUN, ""))
              for n in client.api.networks(filters=filters)]
    return found


def remove_lab_objects(client: docker.DockerClient, *selectors: str, parallel: bool = False) -> list[LabObject]:
    """Remove containers (at once when `parallel`), then networks, by label only. Returns what went."""
    found = lab_objects(client, *selectors)

    def remove(obj: LabObject) -> LabObject | None:
        try:
            if obj.kind == "container":
                client.api.remove_container(obj.id, force=True, v=True)
            else:
                client.api.remove_network(obj.id)
            return obj
        except docker.errors.NotFound:
            return None
        except docker.errors.APIError:
            return None   # e.g. a network whose last container is still going: the caller may try again

    containers = [o for o in found if o.kind == "container"]
    with ThreadPoolExecutor(max_workers=max(1, len(containers)) if parallel else 1) as pool:
        gone = list(pool.map(remove, containers))
    gone += [remove(o) for o in found if o.kind == "network"]
    return [o for o in gone if o is not None]


def remove_until_gone(client: docker.DockerClient, *selectors: str, attempts: int = 20) -> list[LabObject]:
    """Remove by label until nothing matches (a network frees up once its containers are gone)."""
    for _ in range(attempts):
        remove_lab_objects(client, *selectors, parallel=True)
        left = lab_objects(client, *selectors)
        if not left:
            return []
        time.sleep(0.2)
    return left


class Reaper:
    """Removes finished scenarios' objects in the background, so the next scenario need not wait.

    `drain` waits for every removal handed over so far; a run calls it before it
    ends, so nothing is left behind either way.
    """

    def __init__(self, client: docker.DockerClient, workers: int = 2) -> None:
        self.client = client
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="reaper")
        self._futures: list[Future[list[LabObject]]] = []

    def submit(self, removal: Callable[[], list[LabObject]]) -> None:
        """Run `removal` (which returns what it could not remove) in the background."""
        self._futures.append(self._pool.submit(removal))

    def drain(self) -> list[LabObject]:
        """Wait for every removal; what could not be removed (normally nothing)."""
        left: list[LabObject] = []
        for future in self._futures:
            try:
                left += future.result()
            except Exception:   # the engine went away: the caller's own removal by label reports it
                pass
        self._pool.shutdown(wait=True)
        return left
