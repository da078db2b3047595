"""`.ci/engine`: CI starts an installed engine that does not answer, and says so in one line when it cannot.

The last CI failure on record was exactly this: the engine had ended with the session that restarted it,
and `orchestrator build` met a refused socket. Fakes for docker, dockerd and id stand in for the real ones.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / ".ci" / "engine"


def fake_bin(tmp: Path, *, uid: int, dockerd: bool, starts: bool) -> dict[str, str]:
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    marker = tmp / "engine-up"
    tools = {
        "docker": f'[ -e "{marker}" ]\n',
        "id": f"echo {uid}\n",
        "sleep": "exec /bin/sleep 0.1\n",   # the 1 s wait, shortened
    }
    if dockerd:
        tools["dockerd"] = (f'touch "{marker}"\n' if starts else "exit 1\n") + f'echo started >> "{tmp}/dockerd-calls"\n'
    for name, body in tools.items():
        path = bin_dir / name
        path.write_text("#!/bin/sh\n" + body)
        path.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "DOCKER_HOST"}
    env.update(PATH=f"{bin_dir}:/usr/bin:/bin", RSTLAB_CI_ENGINE_WAIT="20", RSTLAB_CI_ENGINE_LOG=str(tmp / "log"))
    return env


def run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=30)


def test_an_answering_engine_is_left_alone(tmp_path: Path) -> None:
    env = fake_bin(tmp_path, uid=0, dockerd=True, starts=True)
    (tmp_path / "engine-up").touch()
    done = run(env)
    assert done.returncode == 0 and done.stderr == ""
    assert not (tmp_path / "dockerd-calls").exists()


def test_a_down_engine_is_started_and_waited_for(tmp_path: Path) -> None:
    done = run(fake_bin(tmp_path, uid=0, dockerd=True, starts=True))
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("\n") == 1 and "starting dockerd" in done.stderr
    assert (tmp_path / "engine-up").exists()


def test_an_engine_that_never_answers_is_one_line_and_exit_3(tmp_path: Path) -> None:
    done = run(fake_bin(tmp_path, uid=0, dockerd=True, starts=False))
    assert done.returncode == 3
    assert done.stderr.splitlines()[-1] == "ci: dockerd was started but did not answer within 20 s"


def test_without_root_or_dockerd_it_says_why(tmp_path: Path) -> None:
    done = run(fake_bin(tmp_path, uid=1000, dockerd=True, starts=True))
    assert done.returncode == 3 and "needs root and dockerd" in done.stderr
    assert not (tmp_path / "dockerd-calls").exists()


def test_a_remote_engine_is_never_started(tmp_path: Path) -> None:
    env = fake_bin(tmp_path, uid=0, dockerd=True, starts=True)
    env["DOCKER_HOST"] = "tcp://192.0.2.1:2375"
    done = run(env)
    assert done.returncode == 3 and "does not answer" in done.stderr
    assert not (tmp_path / "dockerd-calls").exists()


def test_ci_run_calls_it_before_the_build() -> None:
    lines = [line.strip() for line in (SCRIPT.parent / "run").read_text().splitlines()]
    assert lines.index("bash .ci/engine") < lines.index("python -m orchestrator build")
