"""Warm labs kept between runs (issue 19): parked at the end of a run, taken by the next.

At the end of a run (not an interrupted one), the labs its scenarios left
pristine are parked instead of removed, at most `pool_size()` on the engine:
their hosts are renamed `rstlab-pool-<lab>-<host>` and keep running, each
agent waiting on its stdin (created with StdinOnce off, so that the run
detaching does not end it). The next run that needs a lab of that shape claims
one by renaming its hosts back (a rename is atomic: two runs never take the same
lab), attaches to its agents again and has every host checked once more
(`reset`, phase check) before its first scenario. Parked labs carry the
labels of every lab object, so `clean` removes them; they are bounded, and a run
that finds one made from another image of the lab's removes it.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field

import docker

from ..schedule import Shape
from . import engine

POOL_ENV = "RSTLAB_POOL"
DEFAULT_POOL = 12    # labs: the lanes and single-shape scenarios of one `all`, about 30 idle hosts
PREFIX = "rstlab-pool-"


def pool_size() -> int:
    """How many labs may wait on the engine between runs ($RSTLAB_POOL; 0: none, every run removes all)."""
    try:
        return max(0, int(os.environ.get(POOL_ENV, DEFAULT_POOL)))
    except ValueError:
        return DEFAULT_POOL


def shape_label(shape: Shape) -> str:
    """A shape as a label value (a parked lab is matched to a scenario by it)."""
    return hashlib.sha1(repr(shape).encode()).hexdigest()[:16]


def parked_name(lab_id: str, host: str) -> str:
    return f"{PREFIX}{lab_id}-{host}"


@dataclass
class ParkedLab:
    """A lab waiting on the engine: its hosts by name, the image they run, its network."""

    lab_id: str
    shape: str
    image: str
    network: str
    containers: dict[str, str] = field(default_factory=dict)   # host -> container id
    running: bool = True


def parked_labs(client: docker.DockerClient) -> list[ParkedLab]:
    """Every parked lab on the engine, from one list call; with $RSTLAB_SESSION set (the tests set it),
    only that session's, so that a test never takes the lab of a run of somebody else's."""
    session = os.environ.get(engine.SESSION_ENV)
    wanted = [engine.LAB, engine.SHAPE] + ([f"{engine.SESSION}={session}"] if session else [])
    with engine.engine_call("cannot list the warm labs"):
        listed = client.api.containers(all=True, filters={"name": PREFIX, "label": wanted})
    labs: dict[str, ParkedLab] = {}
    for c in listed:
        name = c["Names"][0].lstrip("/")
        labels = c.get("Labels") or {}
        lab_id = labels.get(engine.LAB, "")
        if not name.startswith(PREFIX + lab_id + "-"):
            continue
        lab = labs.setdefault(lab_id, ParkedLab(lab_id, labels.get(engine.SHAPE, ""), c.get("Image", ""),
                                                engine.network_of(c)))
        lab.containers[name.removeprefix(PREFIX + lab_id + "-")] = c["Id"]
        lab.running = lab.running and c.get("State") == "running"
    return list(labs.values())
