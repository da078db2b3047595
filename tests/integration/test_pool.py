"""Labs left warm between runs (lab/pool.py), on the real engine: parked, taken, bounded, cleaned.

`run closed-port` twice with the pool on: the first run leaves its lab warm, the
second takes it (its result says it ran on an earlier run's hosts) and observes
what a run on new hosts observes; `clean` removes what is left.
"""
from __future__ import annotations

import io
import json
from pathlib import Path

import docker
import pytest
from rich.console import Console

from orchestrator.cli import main
from orchestrator.lab import engine
from orchestrator.lab.images import ImageSet
from orchestrator.lab.pool import PREFIX, parked_labs
from tests.integration.conftest import SESSION
from tests.integration.test_reuse import observed


def run(*args: str) -> tuple[int, str]:
    buffer = io.StringIO()
    status = main(list(args), console=Console(file=buffer, width=160))
    return status, buffer.getvalue()


def result(out: Path, name: str) -> dict:
    return json.loads((out / name / "result.json").read_text())


def ours(client: docker.DockerClient) -> list[engine.LabObject]:
    """This test session's objects: the engine may hold other runs' (a user's warm labs among them)."""
    return engine.lab_objects(client, f"{engine.SESSION}={SESSION}")


def clean_ours(client: docker.DockerClient) -> int:
    """`clean --run` for every run of this session that left something: clean removes warm labs too."""
    runs = sorted({o.run_id for o in ours(client)})
    status, _ = run("clean", *[arg for r in runs for arg in ("--run", r)]) if runs else (0, "")
    return status


def test_a_run_leaves_its_lab_warm_and_the_next_takes_it(image_set: ImageSet, tmp_path: Path,
                                                         docker_client: docker.DockerClient,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    clean_ours(docker_client)
    monkeypatch.setenv("RSTLAB_POOL", "2")
    status, text = run("run", "closed-port", "--out", str(tmp_path / "first"))
    assert status == 0 and "1 lab(s) left warm for the next run" in text, text
    first = result(tmp_path / "first", "closed-port")
    assert first["lab"] == {"ran_after": [], "kept": True, "not_kept": {}}
    (warm,) = parked_labs(docker_client)
    assert sorted(warm.containers) == ["client", "server"]
    names = {c.name for c in docker_client.containers.list(all=True, filters={"label": f"{engine.LAB}={warm.lab_id}"})}
    assert names == {f"{PREFIX}{warm.lab_id}-client", f"{PREFIX}{warm.lab_id}-server"}   # no capture left

    status, text = run("run", "closed-port", "--out", str(tmp_path / "second"))
    second = result(tmp_path / "second", "closed-port")
    assert status == 0, text
    assert "objects of other runs" not in text            # a warm lab is no leftover
    assert second["lab"]["ran_after"] == ["an earlier run"] and second["hosts"] != {}
    assert observed(second) == observed(first)
    (again,) = parked_labs(docker_client)                  # parked once more, the same lab
    assert again.lab_id == warm.lab_id

    monkeypatch.setenv("RSTLAB_POOL", "0")                # a run that may keep none removes what it took
    status, _ = run("run", "closed-port", "--out", str(tmp_path / "third"))
    assert status == 0 and result(tmp_path / "third", "closed-port")["lab"]["ran_after"] == []
    assert [p.lab_id for p in parked_labs(docker_client)] == [warm.lab_id]   # left as it was
    assert clean_ours(docker_client) == 0 and not ours(docker_client)


def test_the_pool_is_bounded_and_fresh_runs_leave_nothing(image_set: ImageSet, tmp_path: Path,
                                                          docker_client: docker.DockerClient,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    clean_ours(docker_client)
    monkeypatch.setenv("RSTLAB_POOL", "1")
    status, _ = run("run", "closed-port", "silent-drop", "--out", str(tmp_path / "a"))
    assert [result(tmp_path / "a", name)["lab"]["kept"] for name in ("closed-port", "silent-drop")] == [True, True]
    assert status == 0 and len(parked_labs(docker_client)) == 1   # two labs pristine, room for one
    status, _ = run("run", "linger-abort", "--fresh", "--out", str(tmp_path / "b"))
    assert status == 0 and len(parked_labs(docker_client)) == 1   # --fresh takes none and leaves none
    assert result(tmp_path / "b", "linger-abort")["lab"]["kept"] is None
    assert clean_ours(docker_client) == 0 and not ours(docker_client)
