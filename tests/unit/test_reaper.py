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
