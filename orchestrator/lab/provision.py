"""Getting a tool the machine lacks, or one line saying what to do.

The README's commands must work on a bare machine of our kind: where a run
needs a program that is not installed (debootstrap, when no registry answers),
it installs the Debian package itself when it can (root, apt-get) and says so
in one line, what and why. Where it cannot (no root, no apt-get), it raises
EnvironmentUnusable (exit 3) with what to do. `which`, `euid` and `run` are
parameters so the missing paths are tested without touching the machine.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..errors import EnvironmentUnusable

Progress = Callable[[str], None]
Which = Callable[[str], "str | None"]
Run = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]


def _which(command: str) -> str | None:
    """On PATH, or in the sbin folders a user's PATH may lack (debootstrap lives in /usr/sbin)."""
    return shutil.which(command) or shutil.which(command, path="/usr/local/sbin:/usr/sbin:/sbin")


def _run(cmd: Sequence[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(list(cmd), capture_output=True, text=True, env=env, check=False)


@dataclass(frozen=True)
class Tool:
    """A program a step needs, the Debian package that has it, and why it is needed."""

    command: str
    package: str
    why: str
    otherwise: str = ""   # what else would do instead (e.g. a registry)


def ensure_tool(tool: Tool, progress: Progress, which: Which = _which,
                euid: Callable[[], int] = os.geteuid, run: Run = _run) -> str:
    """The tool's path; installed with apt-get first (said in one line) where it is missing and we can."""
    found = which(tool.command)
    if found:
        return found
    instead = f", or {tool.otherwise}" if tool.otherwise else ""
    if which("apt-get") is None:
        raise EnvironmentUnusable(f"{tool.command} is not installed and there is no apt-get to install it",
                                  f"install {tool.package} ({tool.why}){instead}")
    if euid() != 0:
        raise EnvironmentUnusable(f"{tool.command} is not installed, and installing it needs root",
                                  f"run once as root: apt-get install {tool.package} ({tool.why}){instead}")
    progress(f"installing {tool.package} with apt-get: {tool.why}")
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", tool.package]
    done = run(install)
    if done.returncode != 0:   # a fresh machine may have no package lists yet
        updated = run(["apt-get", "update", "-qq"])
        done = run(install) if updated.returncode == 0 else updated
    path = which(tool.command)
    if done.returncode != 0 or path is None:
        tail = (done.stderr or done.stdout or "").strip().splitlines()[-1:] or ["it installed no such command"]
        raise EnvironmentUnusable(f"apt-get install {tool.package} failed: {tail[0][:200]}",
                                  f"install {tool.package} by hand ({tool.why}){instead}")
    return path


DEBOOTSTRAP = Tool("debootstrap", "debootstrap",
                   "no registry answers, so the lab's base images are bootstrapped from the Debian archive",
                   "make debian:bookworm-slim available to the engine (a registry, or docker load)")
