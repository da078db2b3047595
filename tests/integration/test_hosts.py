"""The hosts themselves, inspected with testinfra (docker://): listeners, firewall policy, sidecars, privileges."""
from __future__ import annotations

from typing import Iterator

import docker
import pytest
import testinfra

from orchestrator import catalog
from orchestrator.lab import engine
from orchestrator.lab.images import ImageSet
from orchestrator.lab.scenario_lab import ScenarioLab
from orchestrator.model import Scenario

HOSTS = ("client", "router", "server", "winhost")


@pytest.fixture(scope="module")
def lab(docker_client: docker.DockerClient, image_set: ImageSet) -> Iterator[ScenarioLab]:
    scenario = Scenario(id="testinfra", title="testinfra", claim="", explanation="", hosts=HOSTS, capture=HOSTS,
                        steps=())
    with ScenarioLab(docker_client, image_set, catalog.load_topology(), engine.new_run_id(), scenario) as running:
        answer = running.agent("server").call("listen", {"sock": "l", "port": 8080}, 10)
        assert answer["ok"], answer
        yield running


def host(lab: ScenarioLab, name: str) -> testinfra.host.Host:
    return testinfra.get_host(f"docker://{lab.prefix}-{name}")


def test_server_listens_where_the_scenario_said(lab: ScenarioLab) -> None:
    server = host(lab, "server")
    assert server.socket("tcp://0.0.0.0:8080").is_listening
    assert not server.socket("tcp://0.0.0.0:7").is_listening


def test_winhost_drops_syns_to_closed_ports(lab: ScenarioLab) -> None:
    rules = host(lab, "winhost").iptables.rules("filter", "INPUT")
    assert "-P INPUT DROP" in rules
    assert any("-m socket --nowildcard -j ACCEPT" in r for r in rules)
    assert not any("REJECT" in r for r in rules), "silently: no RST, no ICMP"


def test_router_forwards_without_redirects(lab: ScenarioLab) -> None:
    router = host(lab, "router")
    assert router.sysctl("net.ipv4.ip_forward") == 1
    assert router.sysctl("net.ipv4.conf.all.send_redirects") == 0


def test_routes_cross_the_router(lab: ScenarioLab) -> None:
    via = lab.addresses["router"]
    assert f"via {via}" in host(lab, "client").check_output("ip route")
    assert f"via {via}" in host(lab, "server").check_output("ip route")


@pytest.mark.parametrize("name", HOSTS)
def test_tcpdump_runs_in_each_sidecar(lab: ScenarioLab, name: str) -> None:
    sidecar = host(lab, f"capture-{name}")
    (proc,) = sidecar.process.filter(comm="tcpdump")
    assert proc.user == "tcpdump", "tcpdump drops root after opening its socket"
    assert "--immediate-mode" in proc.args


def test_no_container_is_privileged(lab: ScenarioLab, docker_client: docker.DockerClient) -> None:
    for c in docker_client.containers.list(filters={"label": f"{engine.RUN}={lab.run_id}"}):
        hc = c.attrs["HostConfig"]
        assert not hc["Privileged"]
        assert hc["CapDrop"] == ["ALL"]
        role = c.labels[engine.ROLE]
        assert set(hc["CapAdd"] or []) == ({"NET_RAW", "SETUID", "SETGID"} if role == "capture"
                                           else {"NET_ADMIN"}), f"{c.name}: {hc['CapAdd']}"
        assert hc["PidsLimit"] and hc["Memory"], f"{c.name} has pid and memory limits"
        assert hc["ReadonlyRootfs"], f"{c.name} runs on a read-only root (a sidecar streams its pcap out)"
    network = docker_client.networks.get(lab.network.id)
    assert network.attrs["Internal"], "nothing can leave the lab network"
