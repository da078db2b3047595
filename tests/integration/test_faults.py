"""Faults from outside during a real scenario: each ends that scenario as `error` with one line naming
the host and what happened; the other scenario goes on and passes; exit 3; nothing left; no traceback.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

import docker
import pytest

from orchestrator.lab import engine
from orchestrator.lab.images import ImageSet
from tests.conftest import ROOT
from tests.integration.test_exit_paths import ENV, objects_of

VICTIM, BYSTANDER = "keepalive-timeout", "closed-port"
Fault = Callable[[docker.DockerClient, str], None]   # (client, name prefix of the victim's objects)


def kill(role: str) -> Fault:
    def inject(client: docker.DockerClient, prefix: str) -> None:
        client.api.kill(f"{prefix}-{role}")
    return inject


def network_of(client: docker.DockerClient, prefix: str) -> str:
    (network,) = [n["Id"] for n in client.api.networks(filters={"name": prefix})]
    return str(network)


def disconnect(host: str) -> Fault:
    def inject(client: docker.DockerClient, prefix: str) -> None:
        client.api.disconnect_container_from_network(f"{prefix}-{host}", network_of(client, prefix), force=True)
    return inject


def remove_network(client: docker.DockerClient, prefix: str) -> None:
    network = network_of(client, prefix)
    for cid in client.api.inspect_network(network)["Containers"]:
        client.api.disconnect_container_from_network(cid, network, force=True)
    client.api.remove_network(network)


@pytest.mark.parametrize("fault, words", [
    (kill("capture-router"), "the capture of router: killed from outside"),
    (kill("client"), "host client: killed from outside"),
    (disconnect("server"), "host server: disconnected from the lab network from outside"),
    (remove_network, f"{VICTIM}: the lab network was removed from outside"),
], ids=["kill-sidecar", "kill-host", "disconnect", "remove-network"])
def test_a_fault_from_outside_is_one_line_and_the_other_scenario_goes_on(
        docker_client: docker.DockerClient, image_set: ImageSet, tmp_path: Path, fault: Fault, words: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "run", VICTIM, BYSTANDER, "--jobs", "2", "--out", str(tmp_path)],
        cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stderr is not None
    lines: list[str] = []
    run_id = ""
    for line in proc.stdout:
        lines.append(line)
        m = re.match(r"run ([0-9a-f]{8}):", line)
        if m:
            run_id = m.group(1)
        if line.startswith(f"{VICTIM} hosts up, capturing"):
            break
    assert run_id, "".join(lines) + proc.stderr.read()
    time.sleep(1.0)   # inside the steps: keepalive probes are going out
    fault(docker_client, f"rstlab-{run_id}-{VICTIM}")
    err: list[str] = []
    reader = threading.Thread(target=lambda: err.append(proc.stderr.read() if proc.stderr else ""))
    reader.start()
    lines += proc.stdout.readlines()
    proc.wait(timeout=120)
    reader.join()
    out = "".join(lines)
    assert proc.returncode == 3, out + err[0]
    assert "Traceback" not in out + err[0] and err[0].strip() == "", err[0]
    said = [line for line in lines if line.startswith(f"{VICTIM} error")]
    assert len(said) == 1 and words in said[0], out
    assert re.search(rf"^{BYSTANDER} passed", out, re.M), out
    doc = json.loads((tmp_path / VICTIM / "result.json").read_text())
    assert doc["verdict"] == "error" and words in doc["error"]
    assert json.loads((tmp_path / BYSTANDER / "result.json").read_text())["verdict"] == "passed"
    assert objects_of(docker_client, run_id) == []
    assert not engine.lab_objects(docker_client, f"{engine.RUN}={run_id}")
