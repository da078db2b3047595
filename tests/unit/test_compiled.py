"""The explain engine compiled with Cython (setup.py): it runs compiled where it was built, never from a copy
built from another source, and it explains every capture exactly as its Python does."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

import pytest

import orchestrator.explain.analysis
from orchestrator.compiled import PURE_VARIABLE, RECORD, SourceFirst, compiled_modules, source_digest, source_of
from tests.conftest import ROOT, WILD


def _module(folder: Path, leaf: str, compiled: bool = True) -> str:
    """A module `leaf` in `folder`: its .py and (only a file) a compiled copy beside it; the .py's digest."""
    source = folder / f"{leaf}.py"
    source.write_text("X = 1\n")
    if compiled:
        (folder / f"{leaf}{EXTENSION_SUFFIXES[0]}").write_bytes(b"")
    return source_digest(str(source))


def test_a_compiled_copy_built_from_another_source_does_not_run(tmp_path: Path) -> None:
    _module(tmp_path, "stale")
    for built in ({"orchestrator.stale": "0" * 64}, {}):      # another source, or none recorded
        spec = SourceFirst(pure=False, built=built).find_spec("orchestrator.stale", [str(tmp_path)])
        assert spec is not None and spec.origin == str(tmp_path / "stale.py")


def test_a_compiled_copy_of_this_source_is_left_to_the_usual_import(tmp_path: Path) -> None:
    built = {"orchestrator.fresh": _module(tmp_path, "fresh")}
    assert SourceFirst(pure=False, built=built).find_spec("orchestrator.fresh", [str(tmp_path)]) is None
    spec = SourceFirst(pure=True, built=built).find_spec("orchestrator.fresh", [str(tmp_path)])     # RSTLAB_PURE
    assert spec is not None and spec.origin == str(tmp_path / "fresh.py")


def test_modules_without_a_compiled_copy_and_other_packages_are_not_its_business(tmp_path: Path) -> None:
    _module(tmp_path, "plain", compiled=False)
    _module(tmp_path, "stale")
    finder = SourceFirst(pure=True, built={})
    assert finder.find_spec("orchestrator.plain", [str(tmp_path)]) is None
    assert finder.find_spec("elsewhere.stale", [str(tmp_path)]) is None
    assert finder.find_spec("orchestrator", None) is None


def test_source_of_names_the_py_beside_a_compiled_module() -> None:
    source = source_of(orchestrator.explain.analysis)
    assert source == str(ROOT / "orchestrator" / "explain" / "analysis.py")


def test_the_engine_runs_compiled_wherever_it_was_built() -> None:
    built = sorted((ROOT / "orchestrator").rglob(f"*{EXTENSION_SUFFIXES[0]}"))
    record = json.loads(Path(RECORD).read_text()) if built else {}
    if os.environ.get("CI"):      # CI's machine has a compiler: a build that fell back without a word fails here
        assert len(built) > 30 and len(record) == len(built)
    for path in built:
        name = ".".join(path.relative_to(ROOT).parent.parts + (path.name.partition(".")[0],))
        __import__(name)
        current = record.get(name) == source_digest(str(path.with_name(name.rpartition(".")[2] + ".py")))
        assert (name in compiled_modules()) == (current and not os.environ.get(PURE_VARIABLE)), name


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
    built = any((ROOT / "orchestrator").rglob(f"*{EXTENSION_SUFFIXES[0]}"))   # none: no compiler (CI has one)
    for f in files:
        compiled, n_compiled = _explain(["explain", *view, f], pure=False)
        pure, n_pure = _explain(["explain", *view, f], pure=True)
        assert n_pure == 0 and (n_compiled > 20 or not built)
        assert compiled.endswith("rc=0") and compiled == pure, f
