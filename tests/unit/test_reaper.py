"""The reaper removes finished scenarios' objects in the background, by label only, and drain waits for it."""
from __future__ import annotations

import threading
from typing import Any

from orchestrator.lab import engine


class FakeApi:
    """Containers and networks with labels; removal takes a moment, as on a real engine."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.objects: dict[str, dict[str, Any]] = {}
        self.removing = threading.Event()
        self.go_on = threading.Event()

    def add(self, kind: str, oid: str, labels: dict[str, str]) -> None:
        self.objects[oid] = {"kind": kind, "labels": labels}

    def _match(self, kind: str, filters: dict[str, list[str]]) -> list[tuple[str, dict[str, str]]]:
        def fits(labels: dict[str, str]) -> bool:
            for sel in filters["label"]:
                key, _, value = sel.partition("=")
                if key not in labels or (value and labels[key] != value):
                    return False
            return True
        with self.lock:
            return [(oid, o["labels"]) for oid, o in self.objects.items() if o["kind"] == kind and fits(o["labels"])]

    def containers(self, all: bool, filters: dict[str, list[str]]) -> list[dict[str, Any]]:
        return [{"Id": oid, "Names": [f"/{oid}"], "Labels": labels} for oid, labels in self._match("container", filters)]

    def networks(self, filters: dict[str, list[str]]) -> list[dict[str, Any]]:
        return [{"Id": oid, "Name": oid, "Labels": labels} for oid, labels in self._match("network", filters)]

    def remove_container(self, oid: str, force: bool, v: bool) -> None:
        self.removing.set()
        self.go_on.wait(5)
        with self.lock:
            del self.objects[oid]

    def remove_network(self, oid: str) -> None:
        with self.lock:
            del self.objects[oid]


class FakeClient:
    def __init__(self) -> None:
        self.api = FakeApi()


def test_removal_runs_in_the_background_and_drain_waits_for_it() -> None:
    client = FakeClient()
    for scenario in ("a", "b"):
        client.api.add("container", f"{scenario}-client", engine.labels("run1", scenario, "client"))
        client.api.add("network", f"{scenario}-lab", engine.labels("run1", scenario))
    client.api.add("container", "other-run", engine.labels("run2", "a", "client"))
    client.api.add("network", "not-ours", {})
    reaper = engine.Reaper(client)   # type: ignore[arg-type]
    reaper.submit(lambda: engine.remove_until_gone(client, f"{engine.RUN}=run1", f"{engine.SCENARIO}=a"))   # type: ignore[arg-type]
    assert client.api.removing.wait(5)
    assert "a-client" in client.api.objects, "remove returned while the engine was still at work"
    client.api.go_on.set()
    assert reaper.drain() == []
    assert sorted(client.api.objects) == ["b-client", "b-lab", "not-ours", "other-run"]


class CountingApi(FakeApi):
    """Records how many containers of each network are being removed at the same moment."""

    def __init__(self) -> None:
        super().__init__()
        self.go_on.set()
        self.busy: dict[str, int] = {}
        self.most: dict[str, int] = {}

    def add_container(self, oid: str, labels: dict[str, str], network: str) -> None:
        self.add("container", oid, labels)
        self.objects[oid]["network"] = network

    def containers(self, all: bool, filters: dict[str, list[str]]) -> list[dict[str, Any]]:
        listed = super().containers(all, filters)
        for c in listed:
            network = self.objects[c["Id"]]["network"]
            shared = network.startswith("container:")
            c["HostConfig"] = {"NetworkMode": network}
            c["NetworkSettings"] = {"Networks": {} if shared else {network: {}}}
        return listed

    def remove_container(self, oid: str, force: bool, v: bool) -> None:
        network = self.objects[oid]["network"]
        with self.lock:
            self.busy[network] = self.busy.get(network, 0) + 1
            self.most[network] = max(self.most.get(network, 0), self.busy[network])
        threading.Event().wait(0.05)
        with self.lock:
            self.busy[network] -= 1
            del self.objects[oid]


def test_containers_of_one_network_leave_it_one_at_a_time() -> None:
    """Two endpoints of one network deleted at once can deadlock Docker 20.10 (moby#46661)."""
    client = FakeClient()
    api = CountingApi()
    client.api = api
    for scenario in ("a", "b"):
        for host in ("client", "router", "server"):
            api.add_container(f"{scenario}-{host}", engine.labels("run1", scenario, host), f"{scenario}-lab")
            api.add_container(f"{scenario}-capture-{host}", engine.labels("run1", scenario, "capture"),
                              f"container:{scenario}-{host}")
        api.add("network", f"{scenario}-lab", engine.labels("run1", scenario))
    gone = engine.remove_lab_objects(client, f"{engine.RUN}=run1", parallel=True)   # type: ignore[arg-type]
    assert len(gone) == 14 and api.objects == {}
    assert api.most["a-lab"] == 1 and api.most["b-lab"] == 1


def test_an_engine_that_stops_answering_ends_every_later_call_at_once() -> None:
    import pytest
    import requests.exceptions

    from orchestrator.errors import LabRuntimeError

    calls = []
    try:
        with pytest.raises(LabRuntimeError) as first, engine.engine_call("cannot start host client"):
            calls.append(1)
            raise requests.exceptions.ReadTimeout("UnixHTTPConnectionPool: Read timed out. (read timeout=90)")
        assert "did not answer within" in first.value.line() and "restart the Docker daemon" in first.value.line()
        assert engine.engine_hung()
        with pytest.raises(LabRuntimeError) as later, engine.engine_call("cannot list the lab's objects"):
            calls.append(2)
        assert calls == [1], "a call was made to an engine known to be hung"
        assert "stopped answering" in later.value.line()
        client = FakeClient()
        with pytest.raises(LabRuntimeError):
            engine.remove_until_gone(client, f"{engine.RUN}=run1")   # type: ignore[arg-type]
    finally:
        engine._engine_hung.clear()
