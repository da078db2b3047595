"""`clean` says what it could not remove, the engine's reason and what to do, and exits 3 (a fake engine, no Docker).

The fake refuses as Docker 20.10 does: a network with an endpoint left is "has active endpoints",
whether a container is attached or the endpoint is stale with none (moby#42119).
"""
from __future__ import annotations

import io
import subprocess
from typing import Any

import docker.errors
import pytest
import requests.exceptions
from rich.console import Console

from orchestrator.cli import main
from orchestrator.lab import cleanup, engine, witness


class FakeApi:
    """Labelled containers and networks; a network refuses removal while it has endpoints."""

    def __init__(self) -> None:
        self.containers_: dict[str, dict[str, Any]] = {}
        self.networks_: dict[str, dict[str, Any]] = {}
        self.refuse_network_once: set[str] = set()
        self.vanish: set[str] = set()          # removed by someone else between listing and removal
        self.timeout = False

    def add_network(self, name: str, labels: dict[str, str], stale: bool = False) -> None:
        self.networks_[name] = {"labels": labels, "endpoints": {}, "stale": stale}

    def add_container(self, name: str, labels: dict[str, str], network: str = "") -> None:
        self.containers_[name] = {"labels": labels}
        if network:
            self.networks_[network]["endpoints"][f"id-{name}"] = {"Name": name}

    @staticmethod
    def _fits(labels: dict[str, str], filters: dict[str, list[str]]) -> bool:
        for selector in filters["label"]:
            key, _, value = selector.partition("=")
            if key not in labels or (value and labels[key] != value):
                return False
        return True

    def containers(self, all: bool, filters: dict[str, list[str]]) -> list[dict[str, Any]]:
        return [{"Id": name, "Names": [f"/{name}"], "Labels": c["labels"]}
                for name, c in self.containers_.items() if self._fits(c["labels"], filters)]

    def networks(self, filters: dict[str, list[str]]) -> list[dict[str, Any]]:
        return [{"Id": name, "Name": name, "Labels": n["labels"]}
                for name, n in self.networks_.items() if self._fits(n["labels"], filters)]

    def remove_container(self, cid: str, force: bool, v: bool) -> None:
        if self.timeout:
            raise requests.exceptions.ReadTimeout("UnixHTTPConnectionPool: Read timed out. (read timeout=90)")
        gone = cid in self.vanish or cid not in self.containers_
        self.containers_.pop(cid, None)
        for n in self.networks_.values():
            n["endpoints"].pop(f"id-{cid}", None)
        if gone:
            raise docker.errors.NotFound("404 Client Error", explanation=f"No such container: {cid}")

    def remove_network(self, nid: str) -> None:
        n = self.networks_[nid]
        if n["endpoints"] or n["stale"] or nid in self.refuse_network_once:
            self.refuse_network_once.discard(nid)
            raise docker.errors.APIError(
                "403 Client Error for http+docker://localhost/v1.41/networks/x: Forbidden",
                explanation=f"error while removing network: network {nid} id 0123abcd has active endpoints")
        del self.networks_[nid]

    def inspect_network(self, nid: str) -> dict[str, Any]:
        return {"Name": nid, "Containers": dict(self.networks_[nid]["endpoints"])}


class FakeClient:
    def __init__(self) -> None:
        self.api = FakeApi()


def a_lab(client: FakeClient, run_id: str = "run1", stale: bool = False) -> None:
    """One scenario's network with two hosts on it and a capture sharing one's namespace."""
    api = client.api
    api.add_network(f"{run_id}-lab", engine.labels(run_id, "closed-port"), stale=stale)
    for host in ("client", "server"):
        api.add_container(f"{run_id}-{host}", engine.labels(run_id, "closed-port", host), f"{run_id}-lab")
    api.add_container(f"{run_id}-capture", engine.labels(run_id, "closed-port", "capture"))


def clean(client: FakeClient, *selectors: str) -> tuple[cleanup.Cleanup, list[float]]:
    pauses: list[float] = []
    done = cleanup.clean(client, *selectors, sleep=pauses.append)   # type: ignore[arg-type]
    return done, pauses


def test_a_clean_engine_is_nothing_left() -> None:
    client = FakeClient()
    a_lab(client)
    done, pauses = clean(client)
    assert (done.count("container"), done.count("network"), done.left, pauses) == (3, 1, [], [])
    assert client.api.containers_ == {} and client.api.networks_ == {}


def test_a_stale_endpoint_network_is_reported_with_the_engines_reason_and_the_restart() -> None:
    client = FakeClient()
    a_lab(client, "run1", stale=True)
    a_lab(client, "run2")
    done, pauses = clean(client)
    assert (done.count("container"), done.count("network")) == (6, 1)
    assert [leftover.obj.name for leftover in done.left] == ["run1-lab"]
    line = done.left[0].line()
    assert line.startswith("could not remove network run1-lab (run run1): error while removing network: "
                           "network run1-lab id 0123abcd has active endpoints (")
    assert "no container is attached" in line and "moby#42119" in line and "restart the Docker daemon" in line
    assert pauses == [1.0], "retried once after a pause before it was called a leftover"


def test_a_container_still_attached_is_named_with_how_to_disconnect_it() -> None:
    client = FakeClient()
    a_lab(client)
    client.api.add_container("someones-debug-shell", {}, "run1-lab")   # not the lab's: clean never removes it
    done, _ = clean(client)
    assert [leftover.obj.name for leftover in done.left] == ["run1-lab"]
    remedy = done.left[0].remedy
    assert "still attached: someones-debug-shell" in remedy
    assert "docker network disconnect --force run1-lab NAME" in remedy
    assert "someones-debug-shell" in client.api.containers_


def test_a_network_that_frees_up_a_moment_later_is_no_leftover() -> None:
    client = FakeClient()
    a_lab(client)
    client.api.refuse_network_once.add("run1-lab")
    client.api.refuse_network_once.add("run1-lab")
    done, _ = clean(client)
    assert done.left == [] and client.api.networks_ == {}


def test_objects_another_clean_removed_meanwhile_are_no_leftover() -> None:
    client = FakeClient()
    a_lab(client)
    client.api.vanish.add("run1-server")
    done, _ = clean(client)
    assert done.left == [] and client.api.containers_ == {} and client.api.networks_ == {}


def test_clean_of_one_run_leaves_the_others() -> None:
    client = FakeClient()
    a_lab(client, "run1")
    a_lab(client, "run2")
    done, _ = clean(client, f"{engine.RUN}=run2")
    assert {o.run_id for o in done.removed} == {"run2"}
    assert sorted(client.api.networks_) == ["run1-lab"] and len(client.api.containers_) == 3


@pytest.fixture
def no_sweep(monkeypatch: pytest.MonkeyPatch) -> None:
    """The unit tests never touch this machine's tracefs."""
    monkeypatch.setattr(witness, "sweep_for_engine", lambda client: [])


def clean_command(client: FakeClient, *args: str) -> subprocess.CompletedProcess[str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(["clean", *args], console=Console(file=out, width=300), err=Console(file=err, width=300),
                  client=client)  # type: ignore[arg-type]
    return subprocess.CompletedProcess(["clean", *args], status, out.getvalue(), err.getvalue())


def test_clean_command_exits_3_with_one_line_per_leftover(no_sweep: None) -> None:
    client = FakeClient()
    a_lab(client, "run1", stale=True)
    a_lab(client, "run2", stale=True)
    a_lab(client, "run3")
    proc = clean_command(client)
    assert proc.returncode == 3
    assert proc.stdout.strip() == "removed 9 containers, 1 networks labelled rstlab.run; 2 could not be removed"
    lines = proc.stderr.splitlines()
    assert len(lines) == 2 and "Traceback" not in proc.stderr
    for run_id, line in zip(("run1", "run2"), lines, strict=True):
        assert line.startswith(f"error: could not remove network {run_id}-lab (run {run_id}): ")
        assert "has active endpoints" in line and "restart the Docker daemon" in line


def test_clean_command_with_nothing_left_exits_0(no_sweep: None) -> None:
    client = FakeClient()
    a_lab(client, "run1")
    a_lab(client, "run2")
    proc = clean_command(client, "--run", "run1")
    assert (proc.returncode, proc.stderr) == (0, "")
    assert proc.stdout.strip() == "removed 3 containers, 1 networks labelled rstlab.run of run run1"
    assert sorted(client.api.networks_) == ["run2-lab"]


def test_an_engine_that_stops_answering_is_one_line_and_status_3(no_sweep: None) -> None:
    client = FakeClient()
    a_lab(client)
    client.api.timeout = True
    try:
        proc = clean_command(client)
    finally:
        engine._engine_hung.clear()
    assert proc.returncode == 3 and proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and "stopped answering" in lines[0] and "restart the Docker daemon" in lines[0]
