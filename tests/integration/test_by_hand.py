"""The README's "By hand" path, run as a person would: Compose up, look around, talk to the agents, capture, down.

It runs the Compose this machine has (the plugin or Debian's docker-compose;
.ci/run installs the latter where neither is present) under a project name of
its own, with its own `rstlab.run` label (RSTLAB_RUN), so it cannot collide
with anyone else's objects, and it removes only those.
"""
from __future__ import annotations

import json
import os
import re
import select
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import docker
import pytest

from orchestrator import catalog
from orchestrator.capture import read_capture
from orchestrator.lab import images
from tests.compose_cli import compose_version, require_compose

ROOT = catalog.PROJECT_DIR
BY_HAND = ROOT / "captures" / "by-hand"


class ByHand:
    """One Compose project of the lab, driven with the README's commands."""

    def __init__(self, command: list[str], run_id: str) -> None:
        self.command = command
        self.project = f"rstlab-{run_id}"
        self.env = {**os.environ, "RSTLAB_RUN": run_id}

    def compose(self, *args: str, timeout: float = 180) -> str:
        out = subprocess.run([*self.command, "-p", self.project, *args], check=False, cwd=ROOT, env=self.env,
                             capture_output=True, text=True, timeout=timeout)
        assert out.returncode == 0, f"{' '.join(self.command)} {' '.join(args)} failed: {out.stderr.strip()[-800:]}"
        return out.stdout

    def container(self, service: str) -> str:
        cid = self.compose("ps", "-q", service).strip()
        assert cid, f"no container for {service}"
        return cid

    def ask(self, service: str, command: dict[str, Any], timeout: float = 20) -> dict[str, Any]:
        """`docker attach` to a host, type one JSON line, read the agent's answer (the README's way)."""
        proc = subprocess.Popen(["docker", "attach", "--sig-proxy=false", self.container(service)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdin is not None and proc.stdout is not None
        try:
            time.sleep(0.5)      # attach has no "attached" signal; a line typed earlier would be lost
            proc.stdin.write((json.dumps(command) + "\n").encode())
            proc.stdin.flush()
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                ready, _, _ = select.select([proc.stdout], [], [], deadline - time.monotonic())
                if not ready:
                    break
                line = proc.stdout.readline()
                if not line:
                    break
                answer = json.loads(line)
                if answer.get("id") == command["id"]:
                    return dict(answer)
            raise AssertionError(f"{service}'s agent did not answer {command} within {timeout} s")
        finally:
            proc.kill()         # detaching does not touch the container (its stdin stays open)
            proc.wait()


def _wait_subnet_free(client: docker.DockerClient, subnet: str, timeout: float = 180) -> None:
    """Another by-hand run holds compose.yaml's fixed subnet: wait for it rather than fail on an overlap."""
    deadline = time.monotonic() + timeout
    while True:
        held = [n.name for n in client.networks.list()
                if any(c.get("Subnet") == subnet for c in ((n.attrs.get("IPAM") or {}).get("Config") or []))]
        if not held:
            return
        assert time.monotonic() < deadline, f"{subnet} stays taken by {held}"
        time.sleep(2)


def _lab_objects(client: docker.DockerClient, run_id: str) -> list[str]:
    selector = {"label": f"rstlab.run={run_id}"}
    return ([c.name for c in client.containers.list(all=True, filters=selector)]
            + [n.name for n in client.networks.list(filters=selector)])


@pytest.fixture()
def by_hand(docker_client: docker.DockerClient, image_set: images.ImageSet) -> Iterator[ByHand]:
    command = require_compose()
    run_id = f"byhand-{uuid.uuid4().hex[:8]}"
    lab = ByHand(command, run_id)
    _wait_subnet_free(docker_client, catalog.load_topology().subnet)
    try:
        yield lab
    finally:
        subprocess.run([*command, "-p", lab.project, "--profile", "capture", "down", "-t", "5"], check=False, cwd=ROOT,
                       env=lab.env, capture_output=True, timeout=180)


def _readme_commands() -> list[str]:
    """The commands of the README's "By hand" block."""
    text = (ROOT / "README.md").read_text()
    block = text.split("### By hand", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    return [line.split("#", 1)[0].strip() for line in block.splitlines() if line.strip()]


def test_by_hand_as_the_readme_says(by_hand: ByHand, docker_client: docker.DockerClient,
                                    record_property: Any) -> None:
    record_property("compose", f"{' '.join(by_hand.command)} {compose_version(by_hand.command)}")
    readme = _readme_commands()
    for args in (["up", "-d"], ["--profile", "capture", "up", "-d"], ["--profile", "capture", "down"]):
        spelled = " ".join(["docker", "compose", "-p", "rstlab", *args])
        assert spelled in readme, f"the README's by-hand block lost `{spelled}`"
        assert spelled.replace("docker compose", "docker-compose") in readme, "the README spells both Composes"
    topology = catalog.load_topology()
    client_addr, server_addr, router_addr = (topology.host(h).address for h in ("client", "server", "router"))

    # the four hosts, then the capture sidecars; files from an earlier by-hand run must not count
    by_hand.compose("up", "-d")
    for stale in BY_HAND.glob("*.pcap"):
        stale.unlink()
    by_hand.compose("--profile", "capture", "up", "-d")
    for host in topology.hosts:
        deadline = time.monotonic() + 30
        while "listening on" not in docker_client.containers.get(by_hand.container(f"capture-{host}")).logs().decode():
            assert time.monotonic() < deadline, f"the capture of {host} never said 'listening on'"
            time.sleep(0.2)

    # every object carries the lab's labels; the network is internal
    run_id = by_hand.env["RSTLAB_RUN"]
    containers = docker_client.containers.list(filters={"label": f"rstlab.run={run_id}"})
    assert sorted(c.labels["rstlab.role"] for c in containers) == sorted(
        [h.role for h in topology.hosts.values()] + ["capture"] * len(topology.hosts))
    assert not any(c.attrs["HostConfig"].get("Privileged") for c in containers)
    (network,) = docker_client.networks.list(filters={"label": f"rstlab.run={run_id}"})
    network.reload()
    assert network.attrs["Internal"] is True, "the lab's network must stay internal"

    # look around: the client's route to the server side is the router
    routes = by_hand.compose("exec", "-T", "client", "ip", "route")
    route = topology.host("client").environment["RSTLAB_ROUTES"]          # "10.213.0.64/26 via 10.213.0.200"
    assert re.search(rf"^{re.escape(route)} dev eth0", routes, re.MULTILINE) and route.endswith(router_addr), routes

    # talk to the agents with docker attach: a listener on the server, a connect from the client
    listen = by_hand.ask("server", {"id": 1, "call": "listen", "args": {"sock": "l", "port": 8000}})
    assert listen["ok"], listen
    connect = by_hand.ask("client", {"id": 1, "call": "connect", "args": {"sock": "c", "host": server_addr, "port": 8000}})
    assert connect["ok"] and connect["result"]["peer"] == [server_addr, 8000], connect
    sport = connect["result"]["local"][1]

    # the router's capture saw that SYN twice: in from the client, out to the server (it forwarded it)
    router_pcap = BY_HAND / "router.pcap"
    deadline = time.monotonic() + 10
    syns: list[Any] = []
    while time.monotonic() < deadline and len(syns) < 2:
        time.sleep(0.3)
        syns = [p for p in read_capture(router_pcap).packets
                if p.flags == "S" and (p.src, p.sport, p.dst, p.dport) == (client_addr, sport, server_addr, 8000)]
    assert [p.direction for p in syns] == ["in", "out"], f"router saw {syns}"
    for host in ("client", "server"):
        assert any(p.sport == sport or p.dport == sport for p in read_capture(BY_HAND / f"{host}.pcap").packets), host

    # down leaves nothing
    by_hand.compose("--profile", "capture", "down")
    assert _lab_objects(docker_client, run_id) == []
