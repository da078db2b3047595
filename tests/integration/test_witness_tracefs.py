"""The witness's tracefs instance on this machine's kernel: made, filtered, read, removed; a killed run's is swept."""
from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console

from orchestrator.lab import witness as tracefs
from orchestrator.witness import SEND, parse_trace


def _refused_on_loopback() -> int:
    """A SYN to a closed loopback port: the kernel answers NO_SOCKET. Returns the client's port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        with pytest.raises(ConnectionRefusedError):
            s.connect(("127.0.0.1", 1))
    return int(port)


def test_an_instance_records_sent_resets_and_keeps_only_the_lab_range_of_the_rest(kernel_witness: None) -> None:
    instance = tracefs.TraceInstance(f"test{os.getpid()}")
    instance.start()
    try:
        assert (instance.path / "trace_clock").read_text().count("[mono]") == 1
        for event, expression in tracefs.FILTERS.items():
            assert (instance.path / "events" / event / "filter").read_text().strip() == expression
        before = time.monotonic()
        port = _refused_on_loopback()
        events = parse_trace(instance.read())
    finally:
        instance.remove()
    assert not instance.path.exists()
    mine = [e for e in events if e.remote_port == port]
    # the RST is recorded (tcp_send_reset cannot be filtered by address); the loopback
    # socket that took it is outside the lab's range, so its receive/state events are filtered out
    assert [(e.event, e.reason, e.state) for e in mine] == [(SEND, "NO_SOCKET", "UNKNOWN")]
    assert before <= mine[0].time <= time.monotonic()   # trace_clock mono is time.monotonic()


def test_a_killed_runs_instance_is_swept_and_a_live_one_kept(kernel_witness: None) -> None:
    """kill -9 leaves the instance behind; the sweep removes it (its owner is gone), never a live run's."""
    run_id = f"kill{os.getpid()}"
    code = (f"import time; from orchestrator.lab.witness import TraceInstance; "
            f"TraceInstance({run_id!r}).start(); print('up', flush=True); time.sleep(60)")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    live = tracefs.TraceInstance(f"live{os.getpid()}")
    live.start()
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "up"
        path = tracefs.TRACEFS / "instances" / f"{tracefs.PREFIX}{run_id}"
        assert tracefs.owner_alive(path) is True
        assert run_id not in tracefs.sweep_instances(lambda r: r != run_id, grace=0)   # its run is going on
        child.kill()                       # SIGKILL: no finally, no atexit
        child.wait(10)
        assert path.is_dir() and tracefs.owner_alive(path) is False
        # with "no objects left" for it, only the killed run's instance goes:
        # this process's live instance (and any other helper's live run) stays
        removed = tracefs.sweep_instances(lambda r: r != run_id, grace=0)
        assert run_id in removed and not path.exists()
        assert live.path.is_dir() and f"live{os.getpid()}" not in removed
    finally:
        if child.poll() is None:
            child.kill()
        tracefs.TraceInstance(run_id).remove()
        live.remove()


def test_an_instance_that_does_not_name_its_owner_goes_only_when_its_run_has_no_objects(kernel_witness: None) -> None:
    run_id = f"anon{os.getpid()}"
    path = tracefs.TRACEFS / "instances" / f"{tracefs.PREFIX}{run_id}"
    path.mkdir()   # as if its first line had been overwritten
    try:
        assert tracefs.owner_alive(path) is None
        assert run_id not in tracefs.sweep_instances(lambda r: r == run_id, grace=0)   # objects left
        assert run_id not in tracefs.sweep_instances(lambda r: r != run_id, grace=3600)  # too young
        assert run_id in tracefs.sweep_instances(lambda r: r != run_id, grace=0)
        assert not path.exists()
    finally:
        tracefs.TraceInstance(run_id).remove()


def test_a_run_that_may_not_use_tracefs_says_so_once_and_otherwise_passes(
        image_set: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As a user who is not root: one line at the start, reason checks not witnessed, the scenario passes."""
    from orchestrator.cli import main

    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    buffer = io.StringIO()
    status = main(["run", "unread-data-close", "--out", str(tmp_path)], console=Console(file=buffer, width=200))
    text = buffer.getvalue()
    assert status == 0, text
    lines = [ln for ln in text.splitlines() if "kernel witness off" in ln]
    assert len(lines) == 1 and "not root" in lines[0]
    doc = json.loads((tmp_path / "unread-data-close" / "result.json").read_text())
    assert doc["verdict"] == "passed" and doc["kernel_witness"]["watched"] is False
    reasons = [c for c in doc["checks"] if c["kind"] == "reasons"]
    assert reasons and all(c["witnessed"] is False for c in reasons)
    assert all(c["passed"] for c in doc["checks"] if c["kind"] != "reasons")
    assert "not witnessed" in (tmp_path / "unread-data-close" / "README.md").read_text()


def test_a_witnessed_run_gives_each_rst_its_reason(image_set: object, tmp_path: Path, kernel_witness: None) -> None:
    from orchestrator.cli import main

    buffer = io.StringIO()
    assert main(["run", "unread-data-close", "--out", str(tmp_path)], console=Console(file=buffer, width=200)) == 0
    doc = json.loads((tmp_path / "unread-data-close" / "result.json").read_text())
    assert doc["kernel_witness"]["reasons"]["server"] == ["TCP_ABORT_ON_CLOSE"]
    words = [p["kernel"]["text"] for ps in doc["packets"].values() for p in ps if "kernel" in p]
    assert words == ["kernel: TCP_ABORT_ON_CLOSE (TCP_CLOSE); client took it in TCP_ESTABLISHED"] * 2
    show = io.StringIO()
    assert main(["show", "unread-data-close", "--out", str(tmp_path)], console=Console(file=show, width=200)) == 0
    assert "RST+ACK from server · kernel: TCP_ABORT_ON_CLOSE (TCP_CLOSE)" in show.getvalue()
    assert "kernel witness off" not in buffer.getvalue()


def test_an_instance_is_made_while_another_run_reads_its_trace(kernel_witness: None,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel refuses buffer_size_kb (EBUSY) while `trace` is open, as another run's sweep or a test
    looking for the owner has it for a moment: the setting waits for the reader instead of the run going
    unwitnessed (seen in CI: 'the run's tracing instance never named its owner')."""
    import threading
    from pathlib import Path

    instance = tracefs.TraceInstance(f"busy{os.getpid()}")
    real = Path.write_text
    held: list[threading.Timer] = []

    def write_text(self: Path, data: str, *args: object, **kwargs: object) -> int:
        if self == instance.path / "trace_clock":          # the first setting: a reader opens `trace` now
            reader = (instance.path / "trace").open()
            held.append(threading.Timer(0.3, reader.close))
            held[-1].start()
        return real(self, data, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "write_text", write_text)
    try:
        start = time.monotonic()
        instance.start()
        assert held and time.monotonic() - start >= 0.25, "buffer_size_kb waited for the reader"
        assert int((instance.path / "buffer_size_kb").read_text()) >= tracefs.BUFFER_KB   # (rounded up to pages)
        assert tracefs.owner_alive(instance.path) is True
    finally:
        monkeypatch.undo()
        for reader in held:
            reader.join()
        instance.remove()
    assert not instance.path.exists()
