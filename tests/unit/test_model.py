"""The scenario file format: valid files load, each kind of bad file is refused with its message."""
from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator import catalog
from orchestrator.errors import ScenarioFileError, UnknownScenario
from orchestrator.model import PacketPattern, Range

TOPOLOGY = catalog.load_topology()
HOSTS = list(TOPOLOGY.hosts)

VALID = """
id: my-case
title: a case
claim: something resets
hosts: [client, router, server]
capture: [client]
steps:
  - {host: server, call: listen, sock: l, port: 80}
  - {host: client, call: connect, sock: c, to: "server:80", background: true, label: conn}
  - {wait: conn}
  - {sleep: 0.1}
expect:
  packets:
    client:
      exact: true
      sequence: ["client > server S", "server > client S. ack=1 gap=..0.5"]
      absent: ["* > * R"]
  app:
    client: [{call: connect, sock: c, errno: ok, elapsed: "..1"}]
  counters:
    server: {TcpOutRsts: 0}
"""


def write(tmp_path: Path, text: str, name: str = "case.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_valid_file_loads(tmp_path: Path) -> None:
    s = catalog.load_scenario_file(write(tmp_path, VALID), TOPOLOGY)
    assert s.id == "my-case" and s.hosts == ("client", "router", "server") and s.capture == ("client",)
    assert [st.kind for st in s.steps] == ["call", "call", "wait", "sleep"]
    assert s.steps[1].args == {"host": "server", "port": 80, "sock": "c"} and s.steps[1].background
    (cap,) = s.packets
    assert cap.exact and cap.sequence[1].ack == 1 and cap.sequence[1].gap == Range(None, 0.5)
    assert s.app[0].errno == "ok" and s.counters[0].value == Range(0, 0)


def test_every_builtin_scenario_loads() -> None:
    scenarios = catalog.builtin_scenarios(TOPOLOGY)
    ids = [s.id for s in scenarios]
    assert {"closed-port", "silent-drop"} <= set(ids)
    assert len(ids) == len(set(ids))
    for s in scenarios:
        assert s.packets and s.app, f"{s.id} checks packets and the application"
        # a scenario whose story needs no router leaves it out; its hosts then reach each other directly,
        # and one that has the router keeps every route through it
        template = catalog.load_topology()
        seen = template.for_hosts(s.hosts)
        for h in s.hosts:
            routes = seen.host(h).environment.get("RSTLAB_ROUTES", "")
            kept = template.host(h).environment.get("RSTLAB_ROUTES", "") if "router" in s.hosts else ""
            assert routes == kept, f"{s.id}: {h}'s routes are {routes!r}, not {kept!r}"


@pytest.mark.parametrize("text, message", [
    ("id: [unclosed", "not valid YAML at line 1"),
    ("", "the file is empty"),
    ("- just\n- a list\n", "scenario: expected a mapping"),
    (VALID.replace("hosts: [client, router, server]\n", ""), "missing field 'hosts'"),
    (VALID + "colour: red\n", "unknown field 'colour'"),
    (VALID.replace("hosts: [client, router, server]", "hosts: [client, router, mainframe]"),
     "unknown host 'mainframe'"),
    (VALID.replace('"client > server S"', '"client > server SYN"'), "flags 'SYN' are not tcpdump flags"),
    (VALID.replace('"client > server S"', '"client -> server S"'), "expected 'SRC > DST FLAGS"),
    (VALID.replace('"client > server S"', '"client > server S wobble=1"'), "unknown key 'wobble'"),
    (VALID.replace("call: listen", "call: listne"), "unknown call 'listne'"),
    (VALID.replace('to: "server:80"', 'to: "winhost:80"'), "expected HOST:PORT with a scenario host"),
    (VALID.replace("elapsed: \"..1\"", "elapsed: soon"), "is not a number or range"),
    (VALID.replace("id: my-case", "id: My Case"), "must be lowercase"),
    (VALID.replace("capture: [client]", "capture: [winhost]"), "not one of the scenario's hosts"),
])
def test_bad_files_are_refused_with_their_message(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ScenarioFileError) as info:
        catalog.load_scenario_file(path, TOPOLOGY)
    line = info.value.line()
    assert message in line and str(path) in line and "\n" not in line


def test_unreadable_and_unknown() -> None:
    with pytest.raises(ScenarioFileError, match="cannot read"):
        catalog.load_scenario_file(Path("/nonexistent/case.yaml"), TOPOLOGY)
    with pytest.raises(UnknownScenario, match="unknown scenario 'nope'"):
        catalog.resolve(["nope"], TOPOLOGY)


def test_resolving_catalogue_ids_reads_only_their_files(monkeypatch: pytest.MonkeyPatch) -> None:
    """`run closed-port` parses closed-port.yaml, not the whole catalogue (issue 19: its start-up time)."""
    read: list[str] = []
    real = catalog._read_yaml
    monkeypatch.setattr(catalog, "_read_yaml", lambda path: read.append(Path(path).name) or real(path))
    chosen = catalog.resolve(["silent-drop", "closed-port"], TOPOLOGY)
    assert [s.id for s in chosen] == ["silent-drop", "closed-port"]
    assert read == ["silent-drop.yaml", "closed-port.yaml"]
    assert chosen == [s for s in catalog.builtin_scenarios(TOPOLOGY) if s.id == "silent-drop"] + \
        [s for s in catalog.builtin_scenarios(TOPOLOGY) if s.id == "closed-port"]


@pytest.mark.parametrize("text, expected", [
    ("1", Range(1, 1)), ("0.8..1.3", Range(0.8, 1.3)), ("..0.1", Range(None, 0.1)),
    ("2..", Range(2, None)), ("<0.5", Range(None, 0.5)), (">=3", Range(3, None)),
])
def test_range_parse(text: str, expected: Range) -> None:
    assert Range.parse(text) == expected


def test_pattern_parse() -> None:
    p = PacketPattern.parse("server > client R. seq=0 ack=1 len=0 gap=0.9..1.2 dir=out", HOSTS)
    assert (p.src, p.dst, p.flags, p.seq, p.ack, p.direction) == ("server", "client", "R.", 0, 1, "out")
    assert 1.0 in p.gap and 1.3 not in p.gap  # type: ignore[operator]
    assert PacketPattern.parse("* > * *", HOSTS).flags == "*"
    assert PacketPattern.parse("client > server P. port=8001", HOSTS).port == 8001
    forged = PacketPattern.parse("server > client R ttl=64 ipid=0 df=1", HOSTS)
    assert (forged.ttl, forged.ip_id, forged.df) == (64, 0, True)
    with pytest.raises(ValueError, match="df is 0 or 1"):
        PacketPattern.parse("server > client R df=yes", HOSTS)


def test_files_come_from_next_to_the_scenario(tmp_path: Path) -> None:
    (tmp_path / "prog.py").write_text("print('hi')\n")
    text = VALID.replace("hosts: [client, router, server]\n", "hosts: [client, router, server]\nfiles: {client: [prog.py]}\n")
    s = catalog.load_scenario_file(write(tmp_path, text), TOPOLOGY)
    (f,) = s.files
    assert (f.host, f.name, f.content, f.path) == ("client", "prog.py", b"print('hi')\n", "/tmp/files/prog.py")


@pytest.mark.parametrize("files, message", [
    ("{client: [missing.py]}", "cannot read 'missing.py'"),
    ("{client: [../etc/passwd]}", "must be a file next to the scenario file"),
    ("{winhost: [prog.py]}", "'winhost' is not one of the scenario's hosts"),
])
def test_bad_files(tmp_path: Path, files: str, message: str) -> None:
    text = VALID.replace("hosts: [client, router, server]\n", f"hosts: [client, router, server]\nfiles: {files}\n")
    with pytest.raises(ScenarioFileError, match=message):
        catalog.load_scenario_file(write(tmp_path, text), TOPOLOGY)


def test_worked_example_loads() -> None:
    from tests.conftest import ROOT
    s = catalog.load_scenario_file(ROOT / "examples" / "unread-response" / "scenario.yaml", TOPOLOGY)
    assert s.files[0].name == "client.py" and s.steps[1].args["argv"][-2] == "{server}"


def test_fix_is_optional_text(tmp_path: Path) -> None:
    s = catalog.load_scenario_file(write(tmp_path, VALID + "fix: >\n  Keepalive.\n"), TOPOLOGY)
    assert s.fix == "Keepalive."
    assert catalog.load_scenario_file(write(tmp_path, VALID), TOPOLOGY).fix == ""
