"""ScenarioLab.fault: what happened to a lab from outside, told from the engine's answers (a fake engine, no Docker)."""
from __future__ import annotations

from typing import Any

import docker.errors
import pytest
import requests.exceptions

from orchestrator import catalog
from orchestrator.lab.images import ImageSet
from orchestrator.lab.scenario_lab import ScenarioLab
from orchestrator.model import Scenario


class Network:
    id = "net1"
    name = "rstlab-x-net"


class FakeApi:
    """The two calls fault() makes: inspect_network and containers (plus wait, for a stream that ended)."""

    def __init__(self) -> None:
        self.network: dict[str, Any] | None = {"Containers": {"c-client": {}, "c-server": {}}}
        self.listed = {cid: {"Id": cid, "State": "running", "Status": "Up 3 seconds"}
                       for cid in ("c-client", "c-server", "s-client")}
        self.exiting: dict[str, int] = {}   # containers that exit (with this status) while fault() looks

    def inspect_network(self, network_id: str) -> dict[str, Any]:
        if self.network is None:
            raise docker.errors.NotFound("network not found")
        return self.network

    def containers(self, all: bool, filters: dict[str, list[str]]) -> list[dict[str, Any]]:
        return list(self.listed.values())

    def wait(self, cid: str, timeout: int) -> dict[str, int]:
        if cid in self.exiting:
            return {"StatusCode": self.exiting[cid]}
        raise requests.exceptions.ReadTimeout("still running")


class FakeClient:
    def __init__(self) -> None:
        self.api = FakeApi()


def lab() -> tuple[ScenarioLab, FakeApi]:
    client = FakeClient()
    scenario = Scenario(id="x", title="x", claim="", explanation="", hosts=("client", "server"),
                        capture=("client",), steps=())
    made = ScenarioLab(client, ImageSet("base", "host"), catalog.load_topology(), "run1", scenario)  # type: ignore[arg-type]
    made.network = Network()  # type: ignore[assignment]
    made.containers = {"client": "c-client", "server": "c-server"}
    made.sidecars = {"client": "s-client"}
    return made, client.api


def test_an_intact_lab_has_no_fault() -> None:
    made, _ = lab()
    assert made.fault() is None


@pytest.mark.parametrize("change, words", [
    (lambda api: api.listed["s-client"].update(State="exited", Status="Exited (137) 1 second ago"),
     "the capture of client: killed from outside (SIGKILL, exit 137)"),
    (lambda api: api.listed["c-server"].update(State="exited", Status="Exited (2) 1 second ago"),
     "host server: stopped from outside (exit 2)"),
    (lambda api: api.listed.pop("c-client"), "host client: its container was removed from outside"),
    (lambda api: api.network["Containers"].pop("c-server"),
     "host server: disconnected from the lab network from outside"),
    (lambda api: setattr(api, "network", None), "x: the lab network was removed from outside"),
])
def test_each_fault_is_named(change: Any, words: str) -> None:
    made, api = lab()
    change(api)
    fault = made.fault()
    assert fault is not None and fault.line() == words


def test_what_the_lab_stopped_itself_is_no_fault() -> None:
    made, api = lab()
    api.listed["s-client"].update(State="exited", Status="Exited (0) 1 second ago")   # tcpdump after our SIGINT
    made._stopped.add("s-client")
    assert made.fault() is None


def test_a_killed_host_that_left_the_network_before_the_engine_marked_it_exited_is_killed() -> None:
    made, api = lab()
    api.network["Containers"].pop("c-client")   # type: ignore[index]
    api.exiting["c-client"] = 137
    fault = made.fault()
    assert fault is not None and fault.line() == "host client: killed from outside (SIGKILL, exit 137)"
