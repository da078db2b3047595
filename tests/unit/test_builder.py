"""C/C++ sources: the build section of a scenario, the cache, the compiler's first message, output checks."""
from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator import catalog
from orchestrator.errors import ScenarioFileError
from orchestrator.lab import builder
from orchestrator.model import AppExpectation, TextMatch
from orchestrator.programs import BuildSource
from orchestrator.verify import check_app

TOPOLOGY = catalog.load_topology()
SCENARIO = """\
hosts: [client, router, server]
build:
  client: [prog.c, {source: tool.cpp, flags: [-O0], output: t}]
steps:
  - {host: client, call: exec, argv: [/tmp/files/prog]}
"""


def load(tmp_path: Path, text: str = SCENARIO) -> object:
    (tmp_path / "prog.c").write_text("int main(void) { return 0; }\n")
    (tmp_path / "tool.cpp").write_text("int main() { return 0; }\n")
    path = tmp_path / "case.yaml"
    path.write_text(text)
    return catalog.load_scenario_file(path, TOPOLOGY)


def test_build_section_names_sources_flags_and_outputs(tmp_path: Path) -> None:
    s = load(tmp_path)
    prog, tool = s.builds  # type: ignore[attr-defined]
    assert (prog.host, prog.name, prog.output, prog.flags, prog.language) == ("client", "prog.c", "prog", ("-O2", "-Wall"), "c")
    assert (tool.output, tool.flags, tool.language, tool.path) == ("t", ("-O0",), "c++", "/tmp/files/t")
    assert builder.compiler_argv(tool) == ["g++", "-O0", "-static", "-o", "/build/t", "/build/src/tool.cpp"]


@pytest.mark.parametrize("change, message", [
    (("prog.c,", "prog.py,"), "'prog.py' is not a C or C++ source"),
    (("  client: [prog.c", "  winhost: [prog.c"), "build.winhost: 'winhost' is not one of the scenario's hosts"),
    (("prog.c,", "missing.c,"), "cannot read 'missing.c'"),
    (("output: t", "output: ../t"), "must be a plain file name"),
    (("flags: [-O0]", "flags: -O0"), "build.client[1].flags: expected a list"),
])
def test_bad_build_sections_are_refused(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    with pytest.raises(ScenarioFileError) as info:
        load(tmp_path, SCENARIO.replace(*change))
    assert message in info.value.line()


def test_files_keep_their_mode(tmp_path: Path) -> None:
    (tmp_path / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (tmp_path / "run.sh").chmod(0o750)
    (tmp_path / "data.txt").write_text("x")
    (tmp_path / "data.txt").chmod(0o640)
    s = load(tmp_path, SCENARIO + "files:\n  server: [run.sh, data.txt]\n")
    assert {f.name: f.mode for f in s.files} == {"run.sh": 0o750, "data.txt": 0o640}  # type: ignore[attr-defined]


def test_the_digest_changes_with_source_flags_and_image() -> None:
    a = BuildSource("client", "p.c", b"int main(void){return 0;}", ("-O2",), "p")
    digests = {builder.build_digest("img:1", a),
               builder.build_digest("img:1", BuildSource("client", "p.c", a.content + b"\n", ("-O2",), "p")),
               builder.build_digest("img:1", BuildSource("client", "p.c", a.content, ("-O0",), "p")),
               builder.build_digest("img:2", a)}
    assert len(digests) == 4
    same_elsewhere = BuildSource("server", "p.c", a.content, ("-O2",), "p")
    assert builder.build_digest("img:1", a) == builder.build_digest("img:1", same_elsewhere)


def test_a_cached_build_compiles_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = load(tmp_path)
    monkeypatch.setattr(builder.images, "ensure_image", lambda *args, **kw: "rstlab/builder:test")
    for source in s.builds:  # type: ignore[attr-defined]
        kept = tmp_path / "cache" / builder.build_digest("rstlab/builder:test", source) / source.output
        kept.parent.mkdir(parents=True)
        kept.write_bytes(b"\x7fELF " + source.output.encode())

    def never(*args: object) -> bytes:
        raise AssertionError("compiled although cached")

    monkeypatch.setattr(builder, "compile_source", never)
    [scenario], built = builder.build_sources(object(), [s], tmp_path, "run", lambda line: None,  # type: ignore[arg-type,list-item]
                                              cache=tmp_path / "cache")
    assert [b.compiled for b in built] == [False, False]
    assert {f.name: (f.content, f.mode, f.path) for f in scenario.files} == {
        "prog": (b"\x7fELF prog", 0o755, "/tmp/files/prog"), "t": (b"\x7fELF t", 0o755, "/tmp/files/t")}


@pytest.mark.parametrize("output, first", [
    (("/build/src/bad.c: In function 'main':\n/build/src/bad.c:3:5: error: 'x' undeclared (first use in this function)\n"
      "/build/src/bad.c:4:1: error: expected ';' before '}' token\n"),
     "bad.c:3:5: error: 'x' undeclared (first use in this function)"),
    (("/usr/bin/ld: /tmp/cc.o: in function `main':\nbad.c:(.text+0x5): undefined reference to `nope'\n"
      "collect2: error: ld returned 1 exit status\n"), "collect2: error: ld returned 1 exit status"),
    ("", "the compiler failed without a message"),
])
def test_first_compiler_message(output: str, first: str) -> None:
    assert builder.first_compiler_message(output, "bad.c") == first


def exec_event(stdout: str, rc: int = 0, signal: str | None = None) -> dict[str, object]:
    return {"host": "client", "call": "exec", "sock": None, "start": 1.0, "end": 1.5, "ok": rc == 0, "errno": None,
            "error": f"killed by {signal}" if signal else None,
            "result": {"rc": rc, "signal": signal, "stdout": stdout, "stderr": ""}}


@pytest.mark.parametrize("match, passed", [
    (TextMatch("contains", "connect time out"), True),
    (TextMatch("contains", "connected"), False),
    (TextMatch("regex", r"^connect time out after \d+ us$"), True),
    (TextMatch("regex", r"^timed out"), False),
    (TextMatch("equals", "connect time out after 500000 us"), True),
])
def test_output_checks_show_expected_and_actual(match: TextMatch, passed: bool) -> None:
    [check] = check_app([AppExpectation("client", "exec", stdout=match)], [exec_event("connect time out after 500000 us\n")])
    assert check.passed is passed
    assert f"stdout {match}" in check.expected
    if not passed:
        assert "stdout 'connect time out after 500000 us\\n'" in check.observed


def test_a_death_by_signal_is_shown_as_such() -> None:
    [check] = check_app([AppExpectation("client", "exec", result={"signal": "SIGPIPE"})],
                        [exec_event("write 1\n", rc=-13, signal="SIGPIPE")])
    assert check.passed and "killed by SIGPIPE" in check.observed


@pytest.mark.parametrize("raw, message", [
    ({"contain": "x"}, "expected one of {contains: TEXT}"),
    ("x", "expected one of"),
    ({"regex": "(unclosed"}, "stdout.regex: missing ), unterminated subpattern"),
])
def test_bad_output_checks_are_refused(tmp_path: Path, raw: object, message: str) -> None:
    import json
    text = SCENARIO + f"expect:\n  app:\n    client: [{{call: exec, stdout: {json.dumps(raw)}}}]\n"
    with pytest.raises(ScenarioFileError) as info:
        load(tmp_path, text)
    assert message in info.value.line()
