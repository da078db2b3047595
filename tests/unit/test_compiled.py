"""The explain engine compiled with Cython (setup.py): it runs compiled where it was built, never from a copy
older than its source, and it explains every capture exactly as its Python does."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

import pytest

import orchestrator.explain.analysis
from orchestrator.compiled import PURE_VARIABLE, SourceFirst, compiled_modules, source_of
from tests.conftest import ROOT

WILD = ROOT.parent / "shared" / "pcaps" / "wild"


def _module(folder: Path, leaf: str, built_after_source: bool | None) -> None:
    """A module `leaf` in `folder`: its .py, and a compiled copy (only a file) made before or after it, or none."""
    source = folder / f"{leaf}.py"
    source.write_text("X = 1\n")
    if built_after_source is None:
        return
    built = folder / f"{leaf}{EXTENSION_SUFFIXES[0]}"
    built.write_bytes(b"")
    now = time.time_ns()
    older, newer = now - 10**9, now
    os.utime(source, ns=(newer, older if built_after_source else newer))
    os.utime(built, ns=(newer, newer if built_after_source else older))


def test_a_compiled_copy_older_than_its_source_does_not_run(tmp_path: Path) -> None:
    _module(tmp_path, "stale", built_after_source=False)
    spec = SourceFirst(pure=False).find_spec("orchestrator.stale", [str(tmp_path)])
    assert spec is not None and spec.origin == str(tmp_path / "stale.py")


def test_a_current_compiled_copy_is_left_to_the_usual_import(tmp_path: Path) -> None:
    _module(tmp_path, "fresh", built_after_source=True)
    assert SourceFirst(pure=False).find_spec("orchestrator.fresh", [str(tmp_path)]) is None
    spec = SourceFirst(pure=True).find_spec("orchestrator.fresh", [str(tmp_path)])     # RSTLAB_PURE
    assert spec is not None and spec.origin == str(tmp_path / "fresh.py")


def test_modules_without_a_compiled_copy_and_other_packages_are_not_its_business(tmp_path: Path) -> None:
    _module(tmp_path, "plain", built_after_source=None)
    _module(tmp_path, "stale", built_after_source=False)
    finder = SourceFirst(pure=True)
    assert finder.find_spec("orchestrator.plain", [str(tmp_path)]) is None
    assert finder.find_spec("elsewhere.stale", [str(tmp_path)]) is None
    assert finder.find_spec("orchestrator", None) is None


def test_source_of_names_the_py_beside_a_compiled_module() -> None:
    source = source_of(orchestrator.explain.analysis)
    assert source == str(ROOT / "orchestrator" / "explain" / "analysis.py")


def test_the_engine_runs_compiled_wherever_it_was_built() -> None:
    built = sorted((ROOT / "orchestrator").rglob(f"*{EXTENSION_SUFFIXES[0]}"))
    if os.environ.get("CI"):      # CI's machine has a compiler: a build that fell back without a word fails here
        assert len(built) > 30
    for path in built:
        name = ".".join(path.relative_to(ROOT).parent.parts + (path.name.partition(".")[0],))
        __import__(name)
        current = path.stat().st_mtime_ns >= path.with_name(path.name.partition(".")[0] + ".py").stat().st_mtime_ns
        assert (name in compiled_modules()) == current, name


def _explain(args: list[str], pure: bool) -> tuple[str, int]:
    """What `python -m orchestrator ARGS` prints (out and err) with its status, and how many modules ran compiled."""
    env = {k: v for k, v in os.environ.items() if k != PURE_VARIABLE}
    if pure:
        env[PURE_VARIABLE] = "1"
    code = ("import sys, orchestrator.cli as cli, orchestrator.compiled as c; rc = cli.main(sys.argv[1:]); "
            "sys.stdout.flush(); print(len(c.compiled_modules()), file=sys.stderr); sys.exit(rc)")
    run = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, env={**env, "COLUMNS": "120"},
                         capture_output=True, text=True, check=False, timeout=120)
    err, _, count = run.stderr.rstrip("\n").rpartition("\n")
    return f"{run.stdout}{err}rc={run.returncode}", int(count)


@pytest.mark.parametrize("view", [["--json"], [], ["--all"]])
def test_compiled_and_pure_explain_every_capture_alike(view: list[str]) -> None:
    files = sorted(str(p) for p in WILD.glob("*.pcap*"))[::4] + [
        str(ROOT / "captures" / "reference" / "firewall-reset" / "client.pcap")]
    for f in files:
        compiled, n_compiled = _explain(["explain", *view, f], pure=False)
        pure, n_pure = _explain(["explain", *view, f], pure=True)
        assert n_pure == 0 and n_compiled > 20
        assert compiled.endswith("rc=0") and compiled == pure, f
