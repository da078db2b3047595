"""Getting a missing tool: installed with apt-get as root (said in one line), else one line and exit 3."""
from __future__ import annotations

import subprocess
from collections.abc import Sequence

import pytest

from orchestrator.errors import EnvironmentUnusable, ExitStatus
from orchestrator.lab.provision import DEBOOTSTRAP, ensure_tool


class FakeMachine:
    """A PATH and an apt-get that installs by adding to it; records every command."""

    def __init__(self, path: set[str], apt_works: bool = True, lists: bool = True) -> None:
        self.path = path
        self.apt_works = apt_works
        self.lists = lists
        self.ran: list[list[str]] = []

    def which(self, name: str) -> str | None:
        return f"/usr/bin/{name}" if name in self.path else None

    def run(self, cmd: Sequence[str]) -> subprocess.CompletedProcess[str]:
        self.ran.append(list(cmd))
        if cmd[1] == "update":
            self.lists = True
            return subprocess.CompletedProcess(cmd, 0, "", "")
        if not self.apt_works or not self.lists:
            return subprocess.CompletedProcess(cmd, 100, "", "E: Unable to locate package debootstrap")
        self.path.add(cmd[-1])
        return subprocess.CompletedProcess(cmd, 0, "", "")


def test_present_tool_is_used_as_is() -> None:
    machine = FakeMachine({"debootstrap", "apt-get"})
    said: list[str] = []
    assert ensure_tool(DEBOOTSTRAP, said.append, machine.which, lambda: 0, machine.run) == "/usr/bin/debootstrap"
    assert said == [] and machine.ran == []


@pytest.mark.parametrize("lists", [True, False])
def test_root_with_apt_installs_it_and_says_why_in_one_line(lists: bool) -> None:
    machine = FakeMachine({"apt-get"}, lists=lists)
    said: list[str] = []
    assert ensure_tool(DEBOOTSTRAP, said.append, machine.which, lambda: 0, machine.run) == "/usr/bin/debootstrap"
    assert said == [("installing debootstrap with apt-get: no registry answers, so the lab's base images are "
                     "bootstrapped from the Debian archive")]
    assert machine.ran[-1][:2] == ["apt-get", "install"] and machine.ran[-1][-1] == "debootstrap"
    assert (["apt-get", "update", "-qq"] in machine.ran) == (not lists), "update only when the lists lack it"


@pytest.mark.parametrize("path, euid, expected", [
    ({"apt-get"}, 1000, ("debootstrap is not installed, and installing it needs root (run once as root: "
                         "apt-get install debootstrap")),
    (set(), 0, "debootstrap is not installed and there is no apt-get to install it (install debootstrap"),
])
def test_without_root_or_apt_one_line_and_exit_3(path: set[str], euid: int, expected: str) -> None:
    machine = FakeMachine(path)
    with pytest.raises(EnvironmentUnusable) as info:
        ensure_tool(DEBOOTSTRAP, lambda line: None, machine.which, lambda: euid, machine.run)
    line = info.value.line()
    assert line.startswith(expected) and "\n" not in line and "debian:bookworm-slim" in line
    assert info.value.status == ExitStatus.ENVIRONMENT and machine.ran == []


def test_apt_failure_is_one_line_with_apt_s_last_words() -> None:
    machine = FakeMachine({"apt-get"}, apt_works=False)
    with pytest.raises(EnvironmentUnusable) as info:
        ensure_tool(DEBOOTSTRAP, lambda line: None, machine.which, lambda: 0, machine.run)
    assert info.value.line().startswith("apt-get install debootstrap failed: E: Unable to locate package")


class NoRegistryEngine:
    """An engine with no images and no registry: every pull fails."""

    class images:
        @staticmethod
        def get(tag: str) -> None:
            import docker.errors
            raise docker.errors.ImageNotFound(tag)

        @staticmethod
        def pull(*args: str) -> None:
            import docker.errors
            raise docker.errors.APIError("no such host registry-1.docker.io")


def test_an_image_without_registry_gets_debootstrap_through_provision(monkeypatch: pytest.MonkeyPatch,
                                                                        tmp_path: object) -> None:
    from pathlib import Path

    from orchestrator.lab import images, provision

    asked: list[str] = []

    def refuse(tool: provision.Tool, progress: object) -> str:
        asked.append(tool.command)
        raise EnvironmentUnusable("debootstrap is not installed and there is no apt-get to install it")

    monkeypatch.setenv("RSTLAB_BASE", "auto")
    monkeypatch.setattr(images.os, "geteuid", lambda: 0)
    monkeypatch.setattr(provision, "ensure_tool", refuse)
    said: list[str] = []
    folder = Path(__file__).resolve().parents[2] / "images" / "builder"
    with pytest.raises(EnvironmentUnusable, match="no apt-get"):
        images.ensure_image(NoRegistryEngine(), folder, "t", said.append)  # type: ignore[arg-type]
    assert asked == ["debootstrap"] and "cannot pull debian:bookworm-slim" in said[0]

    monkeypatch.setattr(images.os, "geteuid", lambda: 1000)
    with pytest.raises(EnvironmentUnusable) as info:
        images.ensure_image(NoRegistryEngine(), folder, "t", said.append)  # type: ignore[arg-type]
    assert "needs root" in info.value.line() and info.value.status == ExitStatus.ENVIRONMENT
