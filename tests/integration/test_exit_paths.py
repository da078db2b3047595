"""Every way a run can end leaves no container or network behind; a hard kill is noticed and cleaned."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import docker
import pytest

from orchestrator.lab import engine
from orchestrator.lab import witness as tracefs
from orchestrator.lab.images import ImageSet
from tests.conftest import ROOT
from tests.integration.conftest import SESSION

ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def start_all(out: Path) -> tuple[subprocess.Popen[str], str]:
    """`all` in a subprocess; returns it once it has said its run id."""
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator", "all", "--out", str(out)], cwd=ROOT, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        m = re.match(r"run ([0-9a-f]{8}):", line)
        if m:
            return proc, m.group(1)
    raise AssertionError(f"no run id printed: {proc.stderr.read() if proc.stderr else ''}")


def objects_of(client: docker.DockerClient, run_id: str) -> list[str]:
    return [o.name for o in engine.lab_objects(client, f"{engine.RUN}={run_id}")]


def instance_of(run_id: str) -> Path:
    """Where the run's kernel witness records (it exists while the run goes on, where tracefs can be used)."""
    return tracefs.TRACEFS / "instances" / f"{tracefs.PREFIX}{run_id}"


WITNESSED = tracefs.unavailable({"KernelVersion": os.uname().release}) is None


def wait_for_objects(client: docker.DockerClient, run_id: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not objects_of(client, run_id):
        assert time.monotonic() < deadline, "the run never created a container"
        time.sleep(0.05)


@pytest.mark.parametrize("sig, delay", [
    (signal.SIGINT, 0.0),    # while the first hosts come up
    (signal.SIGINT, 1.5),    # mid-scenario
    (signal.SIGINT, 4.0),    # later, with scenarios finishing and starting
    (signal.SIGTERM, 1.0),
])
def test_interrupted_run_leaves_nothing(docker_client: docker.DockerClient, image_set: ImageSet, tmp_path: Path,
                                        sig: signal.Signals, delay: float) -> None:
    proc, run_id = start_all(tmp_path)
    wait_for_objects(docker_client, run_id)
    time.sleep(delay)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert objects_of(docker_client, run_id) == []
    assert not instance_of(run_id).exists(), "the run's tracing instance is removed on the way out"


def test_an_interrupt_the_moment_the_tracing_instance_is_made_leaves_it_not(
        docker_client: docker.DockerClient, image_set: ImageSet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        kernel_witness: None) -> None:
    """Ctrl-C landing after the instance exists but before the run holds it (CI saw it once, at delay 0)."""
    import io

    from rich.console import Console

    from orchestrator.cli import main

    made: list[str] = []
    real = tracefs.open_witness

    def interrupted(client: docker.DockerClient, run_id: str, info: dict[str, object],
                    watch: bool = True) -> tracefs.RunWitness:
        real(client, run_id, info, watch)
        made.append(run_id)
        assert instance_of(run_id).is_dir()
        raise KeyboardInterrupt

    monkeypatch.setattr(tracefs, "open_witness", interrupted)
    err = io.StringIO()
    status = main(["run", "closed-port", "--out", str(tmp_path)], console=Console(file=io.StringIO()),
                  err=Console(file=err), client=docker_client)
    assert status == 130 and "interrupted" in err.getvalue()
    assert made and objects_of(docker_client, made[0]) == []
    assert not instance_of(made[0]).exists(), "the run's tracing instance is removed by its name"


def test_hard_kill_is_noticed_and_cleaned(docker_client: docker.DockerClient, image_set: ImageSet,
                                          tmp_path: Path) -> None:
    proc, run_id = start_all(tmp_path)
    wait_for_objects(docker_client, run_id)
    # the first labs are made while the witness sets up: kill once its instance names its owner (one
    # killed before that is swept only once it is older than SWEEP_GRACE and its run has left nothing)
    deadline = time.monotonic() + 30
    while WITNESSED and not tracefs.owner_alive(instance_of(run_id)):
        assert time.monotonic() < deadline, "the run's tracing instance never named its owner"
        time.sleep(0.01)
    proc.kill()
    proc.wait(timeout=30)
    assert objects_of(docker_client, run_id), "kill -9 leaves the run's objects"
    assert instance_of(run_id).is_dir() or not WITNESSED, "and its tracing instance"
    noticed = subprocess.run([sys.executable, "-m", "orchestrator", "run", "closed-port", "--out", str(tmp_path / "2")],
                             cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120)
    assert run_id in noticed.stdout and "python -m orchestrator clean" in noticed.stdout
    assert not instance_of(run_id).exists(), "the next run sweeps the killed run's tracing instance"
    # something unlabelled that clean must not touch
    bystander = docker_client.networks.create(f"rstlab-test-bystander-{run_id}", internal=True)
    try:
        # this run only: a clean of every run would take other runs' labs on a shared engine away
        cleaned = subprocess.run([sys.executable, "-m", "orchestrator", "clean", "--run", run_id], cwd=ROOT, env=ENV,
                                 capture_output=True, text=True, timeout=120)
        assert cleaned.returncode == 0 and "removed" in cleaned.stdout
        assert objects_of(docker_client, run_id) == []
        docker_client.networks.get(bystander.id)   # still there
    finally:
        bystander.remove()


def test_image_that_fails_to_build(docker_client: docker.DockerClient, tmp_path: Path) -> None:
    """A broken Dockerfile: one line naming the image, exit 3, nothing left on the engine."""
    import shutil
    images = tmp_path / "images"
    shutil.copytree(ROOT / "images", images)
    (images / "host" / "Dockerfile").write_text("ARG BASE\nFROM ${BASE}\nRUN exit 7\n")
    proc = subprocess.run([sys.executable, "-m", "orchestrator", "run", "closed-port", "--out", str(tmp_path / "o")],
                          cwd=ROOT, env={**ENV, "RSTLAB_IMAGES": str(images)}, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 3, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "building rstlab/host:" in lines[0] and "failed" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    run_id = re.search(r"run ([0-9a-f]{8})", proc.stdout)
    assert run_id is None, "no scenario started"
    # none of this session's (other runs on the shared engine may have labs created ahead)
    assert not docker_client.containers.list(all=True, filters={"label": f"{engine.SESSION}={SESSION}",
                                                                "status": "created"})


def test_a_hung_step_ends_at_the_scenario_time_limit(docker_client: docker.DockerClient, image_set: ImageSet,
                                                     tmp_path: Path) -> None:
    case = tmp_path / "hang.yaml"
    case.write_text("id: hang\ntitle: waits forever\nclaim: none\nhosts: [server]\ntimeout: 2\n"
                    "steps:\n  - {host: server, call: listen, sock: l, port: 80}\n"
                    "  - {host: server, call: accept, sock: l, as: s}\n")
    t = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "orchestrator", "run", str(case), "--out", str(tmp_path / "o")],
                          cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "went over its time limit of 2 s" in proc.stdout
    assert time.monotonic() - t < 30
    run_id = re.search(r"run ([0-9a-f]{8}):", proc.stdout).group(1)  # type: ignore[union-attr]
    assert objects_of(docker_client, run_id) == []


def test_two_runs_at_once_both_pass(docker_client: docker.DockerClient, image_set: ImageSet,
                                    tmp_path: Path) -> None:
    """Same scenarios, two processes, different --out: names, networks and addresses never collide."""
    cmd = [sys.executable, "-m", "orchestrator", "run", "closed-port", "connect-timeout", "peer-restart"]
    procs = [subprocess.Popen(cmd + ["--out", str(tmp_path / str(i))], cwd=ROOT, env=ENV,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    outputs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outputs, strict=False):
        assert p.returncode == 0, out + err
    ids = [re.search(r"run ([0-9a-f]{8}):", out).group(1) for out, _ in outputs]  # type: ignore[union-attr]
    assert ids[0] != ids[1]
    for run_id in ids:
        assert objects_of(docker_client, run_id) == []
