"""Connecting to the Docker engine, the labels every lab object carries, removal by label.

`engine_call` is the one place an SDK exception becomes the project's error:
every call into the SDK under lab/ runs inside it (or catches what it expects).
"""
from __future__ import annotations

import os
import secrets
import time
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

import docker
import docker.errors
import requests.exceptions

from ..errors import EngineUnavailable, LabError, LabRuntimeError

RUN = "rstlab.run"
SCENARIO = "rstlab.scenario"
ROLE = "rstlab.role"
SESSION = "rstlab.session"
SESSION_ENV = "RSTLAB_SESSION"   # when set, every object also carries it as rstlab.session (tests find theirs)

SDK_ERRORS = (docker.errors.DockerException, requests.exceptions.RequestException)


def explanation(exc: BaseException) -> str:
    """The engine's own words for a failed call, on one line."""
    said = exc.explanation if isinstance(exc, docker.errors.APIError) else None
    text = str(said or exc) or type(exc).__name__
    return " ".join(text.split())[:300]


@contextmanager
def engine_call(what: str, error: type[LabError] = LabRuntimeError) -> Iterator[None]:
    """Run SDK calls; any SDK exception becomes `error` saying `what` failed, in the engine's words."""
    try:
        yield
    except SDK_ERRORS as exc:
        raise error(f"{what}: {explanation(exc)}") from None


def new_run_id() -> str:
    """A short id that names and labels every object of one run."""
    return secrets.token_hex(4)


def labels(run_id: str, scenario: str | None = None, role: str | None = None) -> dict[str, str]:
    out = {RUN: run_id}
    if scenario:
        out[SCENARIO] = scenario
    if role:
        out[ROLE] = role
    session = os.environ.get(SESSION_ENV)
    if session:
        out[SESSION] = session
    return out


def connect(timeout: int = 120) -> docker.DockerClient:
    """A client for the engine DOCKER_HOST names (or the local one); EngineUnavailable if none answers."""
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except (*SDK_ERRORS, OSError) as exc:
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
    with engine_call("cannot list the lab's objects"):
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
        except SDK_ERRORS:
            return None   # gone already, or a network whose last container is still going: try again

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
            except LabRuntimeError:   # the engine went away: the caller's own removal by label reports it
                pass
        self._pool.shutdown(wait=True)
        return left


def kernel_version(client: docker.DockerClient) -> str:
    """The engine's kernel, as results record it."""
    with engine_call("cannot ask the engine for its kernel", EngineUnavailable):
        return str(client.info().get("KernelVersion", ""))


def remove_images(client: docker.DockerClient) -> int:
    """Remove every image labelled rstlab.run (the lab's own); how many went."""
    with engine_call("cannot remove the lab's images", EngineUnavailable):
        found = client.images.list(filters={"label": RUN})
        for image in found:
            if image.id is not None:
                client.images.remove(image.id, force=True)
    return len(found)
