"""Bring your own program: the C examples build once and pass, a compiler error stops everything, binaries run."""
from __future__ import annotations

import io
import json
import re
from pathlib import Path

import docker
import pytest
from rich.console import Console

from orchestrator import catalog
from orchestrator.cli import main
from orchestrator.lab import builder, engine
from orchestrator.lab.images import ImageSet
from orchestrator.programs import BuildSource
from tests.conftest import ROOT

EXAMPLES = [ROOT / "examples" / "c-close-unread" / "scenario.yaml", ROOT / "examples" / "c-connect-timeout" / "scenario.yaml"]


def run(*argv: str) -> tuple[int, str]:
    buffer = io.StringIO()
    status = main(list(argv), console=Console(file=buffer, width=200))
    return status, buffer.getvalue()


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RSTLAB_BUILD_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_the_c_examples_pass_and_the_second_run_compiles_nothing(image_set: ImageSet, tmp_path: Path,
                                                                 cache: Path) -> None:
    status, text = run("run", *map(str, EXAMPLES), "--out", str(tmp_path / "first"))
    assert status == 0, text
    assert "3 built from source, 3 compiled now, 0 from the cache" in text
    status, text = run("run", *map(str, EXAMPLES), "--out", str(tmp_path / "second"))
    assert status == 0, text
    assert "3 built from source, 0 compiled now, 3 from the cache" in text and "compiling" not in text
    pair = json.loads((tmp_path / "second" / "c-close-unread" / "result.json").read_text())
    client = next(e for e in pair["events"] if e["host"] == "client" and e["call"] == "exec")
    assert client["result"]["signal"] == "SIGPIPE" and client["error"] == "killed by SIGPIPE"
    assert "killed by SIGPIPE" in (tmp_path / "second" / "c-close-unread" / "README.md").read_text()


def test_a_compiler_error_is_one_line_exit_2_and_nothing_starts(image_set: ImageSet, tmp_path: Path, cache: Path,
                                                                docker_client: docker.DockerClient,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "broken.c").write_text("int main(void)\n{\n    return missing;\n}\n")
    scenario = tmp_path / "compile-error-case.yaml"
    scenario.write_text("hosts: [client]\nbuild: {client: [broken.c]}\n"
                        "steps:\n  - {host: client, call: exec, argv: [/tmp/files/broken]}\n")
    status, text = run("run", str(scenario), "--out", str(tmp_path / "out"))
    err = capsys.readouterr().err
    assert status == 2, text + err
    assert err.startswith("error: broken.c does not compile: broken.c:3:12: error: 'missing' undeclared"), err
    assert err.count("\n") == 1, err
    assert not re.search(r"^run [0-9a-f]{8}:", text, re.MULTILINE), "no scenario was started"
    assert not engine.lab_objects(docker_client, f"{engine.SCENARIO}=compile-error-case")
    assert not list(cache.rglob("broken"))


def test_a_static_binary_from_elsewhere_runs_as_is(image_set: ImageSet, tmp_path: Path,
                                                   docker_client: docker.DockerClient) -> None:
    """Built outside the scenario (as Go, Rust or gcc -static would), listed under files:, mode kept."""
    source = BuildSource("client", "hello.c",
                         b'#include <stdio.h>\nint main(void){puts("hello from a static binary");return 7;}\n',
                         ("-O2",), "hello")
    image = builder.images.ensure_image(docker_client, catalog.IMAGES_DIR / "builder", "tests", lambda line: None)
    run_id = engine.new_run_id()
    (tmp_path / "hello").write_bytes(builder.compile_source(docker_client, image, source, run_id, "static-binary"))
    (tmp_path / "hello").chmod(0o755)
    (tmp_path / "static-binary.yaml").write_text(
        "hosts: [client]\nfiles: {client: [hello]}\nsteps:\n  - {host: client, call: exec, argv: [/tmp/files/hello]}\n"
        "expect:\n  app:\n    client: [{call: exec, result: {rc: 7}, stdout: {equals: hello from a static binary}}]\n")
    status, text = run("run", str(tmp_path / "static-binary.yaml"), "--out", str(tmp_path / "out"))
    assert status == 0, text
