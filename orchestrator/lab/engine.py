"""Connecting to the Docker engine and the labels every lab object carries."""
from __future__ import annotations

import secrets
from typing import Any

import docker
import docker.errors

from ..errors import EngineUnavailable

RUN = "rstlab.run"
SCENARIO = "rstlab.scenario"
ROLE = "rstlab.role"


def new_run_id() -> str:
    """A short id that names and labels every object of one run."""
    return secrets.token_hex(4)


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


def lab_objects(client: docker.DockerClient, run_id: str | None = None) -> tuple[list[Any], list[Any]]:
    """Containers and networks carrying the run label (of one run, or of any)."""
    selector = f"{RUN}={run_id}" if run_id else RUN
    containers = client.containers.list(all=True, filters={"label": selector})
    networks = client.networks.list(filters={"label": selector})
    return containers, networks


def remove_lab_objects(client: docker.DockerClient, run_id: str | None = None) -> tuple[int, int]:
    """Remove containers, then networks, by label only. Returns how many of each went."""
    containers, networks = lab_objects(client, run_id)
    removed_c = removed_n = 0
    for c in containers:
        try:
            c.remove(force=True, v=True)
            removed_c += 1
        except docker.errors.NotFound:
            pass
    for n in networks:
        try:
            n.remove()
            removed_n += 1
        except docker.errors.NotFound:
            pass
    return removed_c, removed_n
