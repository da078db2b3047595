"""Lint and types fail the build: `.ci/run` and the workflow's unit job run both, with the committed configuration."""
from __future__ import annotations

import tomllib

import yaml

from tests.conftest import ROOT


def test_ci_run_checks_lint_and_types_before_the_tests() -> None:
    lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert "set -euo pipefail" in lines, "a failing check stops the script"
    assert lines.index("ruff check") < lines.index("python -m pytest -q")
    assert lines.index("mypy") < lines.index("python -m pytest -q")


def test_the_unit_job_runs_ruff_and_mypy() -> None:
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "lab.yml").read_text())
    runs = [str(step.get("run", "")) for step in workflow["jobs"]["unit"]["steps"]]
    assert any(r.startswith("ruff check") for r in runs) and "mypy" in runs


def test_the_configuration_is_committed() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert config["tool"]["mypy"]["strict"] is True and config["tool"]["mypy"]["files"] == ["orchestrator"]
    assert config["tool"]["ruff"]["lint"]["select"]
    extras = " ".join(config["project"]["optional-dependencies"]["test"])
    assert all(tool in extras for tool in ("mypy", "ruff", "types-docker", "types-PyYAML"))
    used = any("import dpkt" in f.read_text() for f in (ROOT / "orchestrator").rglob("*.py"))
    declared = any(d.startswith("dpkt") for d in config["project"]["dependencies"])
    assert used == declared, "dpkt is a runtime dependency exactly when the runtime imports it"
