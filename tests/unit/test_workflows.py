"""The GitHub Actions workflows, checked offline: actionlint, the workflow JSON schema, and what the lab job must do."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.y*ml"))
LAB = ROOT / ".github" / "workflows" / "lab.yml"


def tool(name: str) -> str:
    """A console script of the test extras: next to this interpreter, or on PATH."""
    here = Path(sys.executable).parent / name
    found = str(here) if here.exists() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed: pip install -e '.[test]' (it is in the test extras)")
    return found


def load(path: Path) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text())
    # YAML 1.1 reads the key `on` as True
    if True in doc:
        doc["on"] = doc.pop(True)
    return doc


def test_there_are_workflows() -> None:
    assert LAB in WORKFLOWS


def test_actionlint_passes() -> None:
    proc = subprocess.run([tool("actionlint"), "-no-color", *map(str, WORKFLOWS)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_workflow_schema_passes() -> None:
    proc = subprocess.run([tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows",
                           *map(str, WORKFLOWS)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_only_first_party_actions_and_no_secrets() -> None:
    for path in WORKFLOWS:
        doc = load(path)
        for job in doc["jobs"].values():
            for step in job.get("steps", []):
                if "uses" in step:
                    assert step["uses"].startswith("actions/"), f"{path.name}: third-party action {step['uses']}"
        assert "secrets." not in path.read_text(), f"{path.name} needs no secrets"


def step(job: dict[str, Any], words: str) -> dict[str, Any]:
    for s in job["steps"]:
        if words in s.get("name", "") or words in s.get("run", "") or words in s.get("uses", ""):
            return s
    raise AssertionError(f"no step with {words!r}")


def test_the_matrix_comes_from_the_catalogue(tmp_path: Path) -> None:
    """Run the catalogue job's own script: its output is every scenario id, so a new file adds a job."""
    jobs = load(LAB)["jobs"]
    script = step(jobs["catalogue"], "orchestrator list --json")["run"]
    output = tmp_path / "output"
    env = {**os.environ, "GITHUB_OUTPUT": str(output), "RUNNER_TEMP": str(tmp_path),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run(["bash", "-eo", "pipefail", "-c", script], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    key, _, value = output.read_text().strip().partition("=")
    assert key == "scenarios"
    expected = sorted(p.stem for p in (ROOT / "orchestrator" / "scenarios").glob("*.yaml"))
    assert sorted(json.loads(value)) == expected
    assert jobs["catalogue"]["outputs"]["scenarios"] == "${{ steps.list.outputs.scenarios }}"
    matrix = jobs["scenario"]["strategy"]
    assert matrix["matrix"]["scenario"] == "${{ fromJSON(needs.catalogue.outputs.scenarios) }}"
    assert matrix["fail-fast"] is False


def test_each_scenario_job_builds_runs_publishes_and_summarises() -> None:
    job = load(LAB)["jobs"]["scenario"]
    assert set(job["needs"]) >= {"catalogue", "images"}
    restore = step(job, "actions/cache/restore")
    assert "hashFiles('images/**')" in restore["with"]["key"]
    assert "docker load" in step(job, "docker load")["run"]
    assert step(job, "orchestrator build")
    assert "python -m orchestrator run \"$SCENARIO\" --out captures/ci" in step(job, "orchestrator run")["run"]
    assert job["env"]["SCENARIO"] == "${{ matrix.scenario }}"
    upload = step(job, "actions/upload-artifact")
    assert upload["if"] == "always()" and upload["with"]["path"].rstrip("/") == "captures/ci"
    summary = step(job, "GITHUB_STEP_SUMMARY")
    assert summary["if"] == "always()" and "--step-summary" in summary["run"]


def test_images_are_built_once_and_cached_by_their_inputs() -> None:
    jobs = load(LAB)["jobs"]
    cache = step(jobs["images"], "actions/cache@")
    assert cache["with"]["key"] == restore_key(jobs)
    assert "docker save rstlab/base rstlab/host" in step(jobs["images"], "docker save")["run"]


def restore_key(jobs: dict[str, Any]) -> str:
    return step(jobs["scenario"], "actions/cache/restore")["with"]["key"]


def test_the_last_job_gathers_one_documentation_artifact() -> None:
    job = load(LAB)["jobs"]["pages"]
    assert "scenario" in job["needs"] and "always()" in job["if"]
    download = step(job, "actions/download-artifact")
    assert download["with"]["pattern"] == "scenario-*"
    assert "python -m orchestrator report pages" in step(job, "orchestrator report")["run"]
    upload = step(job, "actions/upload-artifact")
    assert upload["with"]["name"] == "rstlab-pages" and upload["with"]["path"].rstrip("/") == "pages"


def test_the_gather_script_builds_the_index_from_artifact_folders(tmp_path: Path) -> None:
    """The pages job's shell script, run on folders laid out like downloaded artifacts."""
    from tests.unit.test_pages import closed_port, peer_restart

    for doc in (closed_port(), peer_restart()):
        folder = tmp_path / "artifacts" / f"scenario-{doc['scenario']}" / doc["scenario"]
        folder.mkdir(parents=True)
        (folder / "result.json").write_text(json.dumps(doc))
        (folder.parent / "index.md").write_text("one scenario's own index")
    work = tmp_path / "work"
    work.mkdir()
    script = step(load(LAB)["jobs"]["pages"], "orchestrator report")["run"]
    env = {**os.environ, "RUNNER_TEMP": str(tmp_path), "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(["bash", "-eo", "pipefail", "-c", script], cwd=work, env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (work / "pages").iterdir()) == [
        "closed-port", "index.html", "index.md", "junit.xml", "peer-restart", "summary.json"]
    assert "2 of 2 scenarios passed" in (tmp_path / "summary.md").read_text()
