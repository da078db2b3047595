"""The command line: each expected error is one line and its documented exit status, no traceback."""
from __future__ import annotations

import io
import json
import os
import socketserver
import subprocess
import sys
import threading
import time
from pathlib import Path

import docker.errors
import pytest
from rich.console import Console

from orchestrator.cli import main
from tests.conftest import ROOT


def cli(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """The command in a subprocess, as a user runs it (argument parsing and the interpreter included)."""
    return subprocess.run([sys.executable, "-m", "orchestrator", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=60)


def run_main(*args: str, client: object = None) -> subprocess.CompletedProcess[str]:
    """The command in this process: `main` given its consoles (and a Docker client), no subprocess."""
    out, err = io.StringIO(), io.StringIO()
    status = main(list(args), console=Console(file=out, width=200), err=Console(file=err, width=200),
                  client=client)  # type: ignore[arg-type]
    return subprocess.CompletedProcess(list(args), status, out.getvalue(), err.getvalue())


def assert_one_line_error(proc: subprocess.CompletedProcess[str], status: int, words: str) -> None:
    assert proc.returncode == status, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and words in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_list_json_names_every_builtin_scenario() -> None:
    proc = cli("list", "--json")
    assert proc.returncode == 0
    listed = json.loads(proc.stdout)
    ids = {s["id"] for s in listed}
    assert {"closed-port", "silent-drop"} <= ids
    files = {p.stem for p in (ROOT / "orchestrator" / "scenarios").glob("*.yaml")}
    assert ids == files


def test_list_table() -> None:
    proc = cli("list")
    assert proc.returncode == 0 and "closed-port" in proc.stdout


def test_unknown_scenario_is_bad_input() -> None:
    assert_one_line_error(run_main("run", "no-such-case"), 2, "unknown scenario 'no-such-case'")


def test_malformed_scenario_file_is_bad_input(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: x\ntitle: [oops\n")
    assert_one_line_error(run_main("run", str(bad)), 2, "not valid YAML")


def test_schema_invalid_scenario_file_names_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: x\ntitle: t\nclaim: c\nhosts: [client]\nsteps: [{host: client, call: fly}]\n")
    assert_one_line_error(run_main("run", str(bad)), 2, "steps[0].call: unknown call 'fly'")


def test_scenario_naming_a_host_the_topology_lacks(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: x\ntitle: t\nclaim: c\nhosts: [client, mainframe]\nsteps: []\n")
    assert_one_line_error(run_main("run", str(bad)), 2, "unknown host 'mainframe'")


def test_empty_scenario_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert_one_line_error(run_main("run", str(empty)), 2, "the file is empty")


def test_no_engine_is_environment_error(tmp_path: Path) -> None:
    # port 9 on loopback: nothing listens, the connection is refused at once
    proc = cli("run", "closed-port", "--out", str(tmp_path), env={"DOCKER_HOST": "tcp://127.0.0.1:9"})
    assert_one_line_error(proc, 3, "no Docker engine reachable")


class _HangingEngine(socketserver.ThreadingUnixStreamServer):
    """An engine that answers its version and ping, then never answers again (a deadlocked dockerd)."""

    daemon_threads = True
    block_on_close = False


class _HangingHandler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        while True:
            request = self.rfile.readline().decode()
            if not request:
                return
            while self.rfile.readline() not in (b"\r\n", b""):
                pass   # the headers (these requests carry no body)
            if "/version" in request or "/_ping" in request:
                body = b'{"ApiVersion": "1.41", "Version": "20.10.24"}' if "/version" in request else b"OK"
                self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                 b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
                continue
            threading.Event().wait(60)   # the call that never returns
            return


def test_an_engine_that_stops_answering_is_one_line_and_exit_3(tmp_path: Path) -> None:
    """The engine answers, then hangs (Docker 20.10's libnetwork deadlock did this here): one line, exit 3."""
    sock = tmp_path / "engine.sock"
    server = _HangingEngine(str(sock), _HangingHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        started = time.monotonic()
        proc = cli("run", "closed-port", "--out", str(tmp_path / "out"),
                   env={"DOCKER_HOST": f"unix://{sock}", "RSTLAB_ENGINE_TIMEOUT": "2"})
        assert_one_line_error(proc, 3, "did not answer within 2 s")
        assert "restart the Docker daemon" in proc.stderr
        assert time.monotonic() - started < 30, "each later call waited for its own timeout"
    finally:
        server.shutdown()
        server.server_close()


class RefusingApi:
    """An engine that answers and then refuses everything: each SDK call raises the SDK's own error."""

    def __getattr__(self, name: str) -> object:
        def refuse(*args: object, **kwargs: object) -> object:
            raise docker.errors.APIError(f"500 Server Error: {name}", explanation=f"the engine refused {name}")
        return refuse


class RefusingClient:
    api = RefusingApi()

    def info(self) -> dict[str, str]:
        raise docker.errors.APIError("500", explanation="the engine refused info")


@pytest.mark.parametrize("args, words", [
    (("run", "closed-port"), "cannot list the lab's objects: the engine refused containers"),
    (("clean",), "cannot list the lab's objects: the engine refused containers"),
])
def test_an_engine_refusing_a_call_is_one_line_and_status_3(tmp_path: Path, args: tuple[str, ...],
                                                            words: str) -> None:
    """An SDK exception never reaches the user: lab/ turns it into the project's error (in-process, no Docker)."""
    extra = ("--out", str(tmp_path)) if args[0] == "run" else ()
    assert_one_line_error(run_main(*args, *extra, client=RefusingClient()), 3, words)


def test_unwritable_output_is_bad_input(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert_one_line_error(run_main("run", "closed-port", "--out", str(blocker / "sub")), 2,
                          "cannot write to the output folder")


def test_usage_error_is_status_2() -> None:
    proc = cli("frobnicate")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


@pytest.mark.parametrize("command", ["list", "run", "all", "explain", "show", "report", "build", "clean"])
def test_help_for_every_command(command: str) -> None:
    assert cli(command, "--help").returncode == 0


@pytest.mark.parametrize("args", [
    ["list"], ["list", "--json"],
    ["show", "closed-port", "--out", "captures/reference"],
    ["explain", "captures/reference/closed-port/client.pcap"],
    ["report", "{tmp}"],
])
def test_commands_that_need_no_engine_never_load_the_docker_sdk(args: list[str], tmp_path: Path) -> None:
    """`list`, `show`, `explain` and `report` start fast: the SDK is imported only by the commands that use it."""
    import shutil
    shutil.copytree(ROOT / "captures" / "reference" / "closed-port", tmp_path / "closed-port")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    probe = ("import io, sys\nfrom rich.console import Console\nfrom orchestrator.cli import main\n"
             f"status = main({args!r}, console=Console(file=io.StringIO()))\n"
             "loaded = sorted(m for m in sys.modules if m == 'docker' or m.startswith('docker.'))\n"
             "print(status, len(loaded), loaded[:3], file=sys.stderr)\n")
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines()[-1].split()[:2] == ["0", "0"], done.stderr


@pytest.mark.parametrize("mode", [["--json"], [], ["--all"]])
def test_output_closed_by_its_reader_ends_quietly_with_141(tmp_path: Path, mode: list[str]) -> None:
    """`explain … | head`: once the reader has closed the pipe, the command stops with 141 (128 + SIGPIPE, what
    a shell reports for a writer the pipe killed), no traceback and no line on stderr (it was 1 in the terminal's
    views, which the contract keeps for a failed expectation, and a traceback with --json)."""
    from tests.unit.test_explain_size import _capture

    path = tmp_path / "many.pcap"
    _capture(path, 3_000)
    child = subprocess.Popen([sys.executable, "-m", "orchestrator", "explain", *mode, str(path)], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert child.stdout is not None and child.stderr is not None
    assert child.stdout.read(100)
    child.stdout.close()
    assert child.wait(timeout=120) == 141
    assert child.stderr.read() == b""


def test_json_of_many_verdicts_is_written_in_a_few_large_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`explain --json` hands stdout a batch of records at a time: with PYTHONUNBUFFERED (set on our machines)
    each record was a write(2) of its own, 7% of a dense capture's time."""
    from orchestrator.cli import JSON_BATCH, main
    from tests.unit.test_explain_size import _capture

    class Counting(io.StringIO):
        writes = 0

        def write(self, s: str) -> int:
            Counting.writes += 1
            return super().write(s)

    path = tmp_path / "many.pcap"
    _capture(path, 3_000)
    out = Counting()
    monkeypatch.setattr(sys, "stdout", out)
    assert main(["explain", "--json", str(path)]) == 0
    records = json.loads(out.getvalue())
    assert len(records) > 2_000
    assert Counting.writes <= len(out.getvalue()) // JSON_BATCH + 1 < len(records) // 100
