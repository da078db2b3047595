"""Scenario files of one's own on the real engine: `new` writes one that passes, a minimal file runs."""
from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from orchestrator.cli import main
from orchestrator.lab.images import ImageSet
from tests.unit.test_scenario_files import MINIMAL


def run(*argv: str) -> tuple[int, str]:
    buffer = io.StringIO()
    status = main(list(argv), console=Console(file=buffer, width=160))
    return status, buffer.getvalue()


def test_new_writes_a_scenario_that_passes_as_written(image_set: ImageSet, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert run("new", "my-first")[0] == 0
    status, text = run("run", "my-first.yaml", "--out", str(tmp_path / "out"))
    assert status == 0, text
    doc = json.loads((tmp_path / "out" / "my-first" / "result.json").read_text())
    assert doc["verdict"] == "passed" and len(doc["checks"]) >= 8
    assert any("R" in p["flags"] for p in doc["packets"]["client"]), "the starter shows a reset"


def test_a_file_with_only_hosts_steps_and_expect_runs(image_set: ImageSet, tmp_path: Path) -> None:
    path = tmp_path / "bare.yaml"
    path.write_text(MINIMAL)
    status, text = run("run", str(path), "--out", str(tmp_path / "out"))
    assert status == 0, text
    doc = json.loads((tmp_path / "out" / "bare" / "result.json").read_text())
    assert doc["verdict"] == "passed" and doc["title"] == "bare" and doc["claim"] == ""
    page = (tmp_path / "out" / "bare" / "README.md").read_text()
    assert page.startswith("# bare: bare") and "article says" not in page
