"""Connecting to the Docker engine, the labels every lab object carries, removal by label.

`engine_call` is the one place an SDK exception becomes the project's error:
every call into the SDK under lab/ runs inside it (or catches what it expects).
"""
from __future__ import annotations

import os
import secrets
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import docker
import docker.errors
import requests.exceptions

from ..errors import EngineUnavailable, LabError, LabRuntimeError

RUN = "rstlab.run"
SCENARIO = "rstlab.scenario"
ROLE = "rstlab.role"
LAB = "rstlab.lab"   # one lab's network and hosts, which a run may hand from one scenario to the next
SHAPE = "rstlab.shape"   # a reusable lab's shape (lab/pool.py: a parked lab is matched to a scenario by it)
SESSION = "rstlab.session"
SESSION_ENV = "RSTLAB_SESSION"   # when set, every object also carries it as rstlab.session (tests find theirs)

SDK_ERRORS = (docker.errors.DockerException, requests.exceptions.RequestException)
# s: no engine call of the lab's takes this long unless the engine has stopped answering (tests shorten it)
CALL_TIMEOUT = int(os.environ.get("RSTLAB_ENGINE_TIMEOUT", "90"))

# Once one call has gone unanswered for CALL_TIMEOUT, the engine is taken as hung for the rest of the
# process: every further call fails at once, so a run ends in one line instead of a timeout per call.
# Seen here: Docker 20.10's libnetwork deadlocks (moby#46661, libnetwork#2649) and then never answers
# a network call again; only restarting the daemon ends it.
_engine_hung = threading.Event()
HUNG_HINT = ("if `docker network ls` hangs too, the engine's networking is deadlocked "
             "(a Docker 20.10 bug, moby#46661): restart the Docker daemon")


def explanation(exc: BaseException) -> str:
    """The engine's own words for a failed call, on one line."""
    said = exc.explanation if isinstance(exc, docker.errors.APIError) else None
    text = str(said or exc) or type(exc).__name__
    return " ".join(text.split())[:300]


def engine_hung() -> bool:
    """Whether a call of this process has already gone unanswered (see CALL_TIMEOUT)."""
    return _engine_hung.is_set()


@contextmanager
def engine_call(what: str, error: type[LabError] = LabRuntimeError) -> Iterator[None]:
    """Run SDK calls; any SDK exception becomes `error` saying `what` failed, in the engine's words.

    A call that times out marks the engine hung: this and every later `engine_call` raise at once.
    """
    if _engine_hung.is_set():
        raise error(f"{what}: the Docker engine stopped answering", HUNG_HINT)
    try:
        yield
    except requests.exceptions.Timeout:
        _engine_hung.set()
        raise error(f"{what}: the Docker engine did not answer within {CALL_TIMEOUT} s", HUNG_HINT) from None
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


def connect(timeout: int = CALL_TIMEOUT) -> docker.DockerClient:
    """A client for the engine DOCKER_HOST names (or the local one); EngineUnavailable if none answers."""
    try:
        client = docker.from_env(timeout=timeout)
        if client.api.base_url.startswith("http+docker://"):
            # a unix socket takes no proxy and no netrc: without this, requests looks up proxy and
            # netrc settings in the environment on every call (about a third of the client's CPU)
            client.api.trust_env = False
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
    network: str = ""   # a container's network; "" for one that shares another's namespace (a capture)
    lab: str = ""       # its lab (rstlab.lab), if any


def lab_objects(client: docker.DockerClient, *selectors: str) -> list[LabObject]:
    """Containers, then networks, carrying the run label (and any further `label=value` selectors).

    One list call each and no per-object inspection, so objects that other runs
    remove meanwhile cannot make it fail.
    """
    filters = {"label": [RUN, *selectors]}
    with engine_call("cannot list the lab's objects"):
        found = [LabObject("container", c["Id"], c["Names"][0].lstrip("/"), c["Labels"].get(RUN, ""),
                           network_of(c), c["Labels"].get(LAB, ""))
                 for c in client.api.containers(all=True, filters=filters)]
        found += [LabObject("network", n["Id"], n["Name"], (n.get("Labels") or {}).get(RUN, ""), "",
                            (n.get("Labels") or {}).get(LAB, ""))
                  for n in client.api.networks(filters=filters)]
    return found


def network_of(container: dict[str, Any]) -> str:
    """The network a listed container is attached to ("" when it shares another's namespace)."""
    mode = str((container.get("HostConfig") or {}).get("NetworkMode", ""))
    if mode.startswith("container:"):
        return ""
    networks = (container.get("NetworkSettings") or {}).get("Networks") or {}
    return min(networks) if networks else mode


def remove_lab_objects(client: docker.DockerClient, *selectors: str, parallel: bool = False) -> list[LabObject]:
    """Remove containers, then networks, by label only. Returns what went.

    With `parallel`, containers go at once except that the containers of one
    network leave it one after another: two endpoints of one network deleted at
    the same moment can deadlock Docker 20.10's libnetwork (moby#46661,
    libnetwork#2649; seen here mid-run), after which the engine answers no
    network call until it is restarted. Captures hold no endpoint of their own.
    """
    found = lab_objects(client, *selectors)

    def remove(obj: LabObject) -> LabObject | None:
        if _engine_hung.is_set():
            return None
        try:
            if obj.kind == "container":
                client.api.remove_container(obj.id, force=True, v=True)
            else:
                client.api.remove_network(obj.id)
            return obj
        except requests.exceptions.Timeout:
            _engine_hung.set()
            return None
        except SDK_ERRORS:
            return None   # gone already, or a network whose last container is still going: try again

    def remove_in_turn(objects: list[LabObject]) -> list[LabObject | None]:
        return [remove(o) for o in objects]

    containers = [o for o in found if o.kind == "container"]
    if parallel:
        groups = [[o] for o in containers if not o.network]
        by_network: dict[str, list[LabObject]] = {}
        for o in containers:
            if o.network:
                by_network.setdefault(o.network, []).append(o)
        groups += list(by_network.values())
    else:
        groups = [containers]
    with ThreadPoolExecutor(max_workers=max(1, len(groups))) as pool:
        gone = [o for done in pool.map(remove_in_turn, groups) for o in done]
    gone += [remove(o) for o in found if o.kind == "network"]
    return [o for o in gone if o is not None]


def remove_until_gone(client: docker.DockerClient, *selectors: str, attempts: int = 20) -> list[LabObject]:
    """Remove by label until nothing matches (a network frees up once its containers are gone)."""
    for _ in range(attempts):
        if _engine_hung.is_set():
            raise LabRuntimeError("cannot remove the lab's objects: the Docker engine stopped answering", HUNG_HINT)
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


def engine_info(client: docker.DockerClient) -> dict[str, Any]:
    """The engine's `docker info` (its kernel, as results record it, and what the witness needs to know)."""
    with engine_call("cannot ask the engine for its kernel", EngineUnavailable):
        return dict(client.info())


def remove_images(client: docker.DockerClient) -> int:
    """Remove every image labelled rstlab.run (the lab's own); how many went."""
    with engine_call("cannot remove the lab's images", EngineUnavailable):
        found = client.images.list(filters={"label": RUN})
        for image in found:
            if image.id is not None:
                client.images.remove(image.id, force=True)
    return len(found)
