"""`clean` on the real engine: what it cannot remove is one line with Docker's reason and a remedy that works.

A lab network that a container the lab did not make is attached to (someone's debugging shell) is
refused by the engine with "has active endpoints", the same words as the stale-endpoint bug of
Docker 20.10 (moby#42119) that only a daemon restart clears; clean must say which it is, leave the
container alone, and exit 3 until the remedy it prints has been followed.
"""
from __future__ import annotations

import os
import secrets
import subprocess
import sys

import docker
import docker.errors

from orchestrator.lab import engine
from orchestrator.lab.images import ImageSet
from tests.conftest import ROOT


def clean_run(run_id: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "orchestrator", "clean", "--run", run_id], cwd=ROOT,
                          env=os.environ.copy(), capture_output=True, text=True, timeout=180)


def test_a_network_held_by_a_foreign_container_is_reported_and_the_remedy_works(
        docker_client: docker.DockerClient, image_set: ImageSet) -> None:
    run_id = secrets.token_hex(4)
    labels = engine.labels(run_id, "clean-test")
    network = docker_client.networks.create(f"rstlab-clean-test-{run_id}", internal=True, labels=labels)
    started = []
    try:
        for name, its_labels in ((f"rstlab-clean-test-{run_id}-host", labels),
                                 (f"clean-test-bystander-{run_id}", {})):
            started.append(docker_client.containers.run(
                image_set.host, entrypoint=["sleep", "120"], name=name, labels=its_labels, network=network.name,
                detach=True))
        bystander = started[1]

        first = clean_run(run_id)
        assert first.returncode == 3, first.stdout + first.stderr
        assert first.stdout.strip() == (f"removed 1 containers, 0 networks labelled rstlab.run of run {run_id}; "
                                        "1 could not be removed")
        lines = first.stderr.splitlines()
        assert len(lines) == 1 and "Traceback" not in first.stderr, first.stderr
        assert lines[0].startswith(f"error: could not remove network {network.name} (run {run_id}): ")
        assert "has active endpoints" in lines[0]   # Docker's own words
        remedy = f"still attached: {bystander.name}: `docker network disconnect --force {network.name} NAME`"
        assert remedy in lines[0]
        bystander.reload()
        assert bystander.status == "running", "clean touched a container that is not the lab's"

        network.disconnect(bystander, force=True)   # what the line says to do
        second = clean_run(run_id)
        assert (second.returncode, second.stderr) == (0, "")
        assert second.stdout.strip() == f"removed 0 containers, 1 networks labelled rstlab.run of run {run_id}"
        assert engine.lab_objects(docker_client, f"{engine.RUN}={run_id}") == []
    finally:
        for container in started:
            try:
                container.remove(force=True)
            except docker.errors.NotFound:
                pass
        try:
            network.remove()
        except docker.errors.NotFound:
            pass
