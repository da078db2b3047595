"""The tests' independent oracles, tshark and headless Chromium: installed here, or in a container.

Where the machine has the program, the tests run it. Where it does not, they
run it in `rstlab/tools` (images/tools: Debian's tshark and chromium), built
on the lab's own base image the first time a test needs it, with the paths it reads and
writes bind-mounted at the same place and no network. One line says so.
RSTLAB_ORACLES=host|container forces one way (default: auto).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

import docker
import pytest

from orchestrator import catalog
from orchestrator.errors import LabError
from orchestrator.lab import engine, images

TOOLS = {"tshark": ("tshark",), "chromium": ("chromium", "chromium-browser", "google-chrome")}
_lock = threading.Lock()
_image: dict[str, str] = {}


def say(line: str, who: str = "oracles") -> None:
    """One line on the terminal, past pytest's capture."""
    print(f"\n[{who}] {line}", file=sys.__stderr__, flush=True)


def unavailable(message: str) -> None:
    """Fail where CI is set (the oracles must run there), skip elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(f"CI is set, so the independent oracles must run: {message}")
    pytest.skip(message)


def installed(tool: str) -> str | None:
    if os.environ.get("RSTLAB_ORACLES") == "container":
        return None
    for name in TOOLS[tool]:
        found = shutil.which(name)
        if found:
            return found
    return None


def build_stages(line: str) -> None:
    """The build's stages (not every apt line) on the terminal: a cold build takes minutes."""
    if line.startswith(("Step ", "building", "bootstrapping", "importing", "installing", "cannot pull")):
        say(line, "images")


def tools_image(client: docker.DockerClient) -> str:
    """rstlab/tools for the current inputs, built once (and said so) when missing."""
    with _lock:
        if "tag" not in _image:
            folder = catalog.IMAGES_DIR / "tools"
            say("tshark or chromium is not installed here: running them in the rstlab/tools container "
                f"({folder}), built now if missing")
            base = images.ensure_images(client, catalog.IMAGES_DIR, "tests", build_stages).base
            _image["tag"] = images.ensure_image(client, folder, "tests", build_stages, base=base)
        return _image["tag"]


def run(tool: str, args: Sequence[str], mounts: Sequence[Path],
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`tool args…` on this machine, or in the tools container with `mounts` (folders) at the same paths."""
    found = installed(tool)
    if found is not None:
        return subprocess.run([found, *args], capture_output=True, text=True, timeout=timeout, check=False)
    if os.environ.get("RSTLAB_ORACLES") == "host":
        unavailable(f"{tool} is not installed (RSTLAB_ORACLES=host)")
    try:
        client = engine.connect()
        image = tools_image(client)
    except LabError as exc:
        unavailable(f"{tool} is not installed and its container cannot be had: {exc.line()}")
        raise
    # each folder at the path the arguments name it by and at its real one (../shared may be a symbolic link)
    binds = sorted({f"{m.resolve()}:{target}:rw" for m in mounts for target in (m.absolute(), m.resolve())})
    container = client.containers.create(
        image, [TOOLS[tool][0], *args], volumes=binds, network_mode="none", user=f"{os.getuid()}:{os.getgid()}",
        environment={"HOME": "/tmp"}, shm_size="256m", labels=engine.labels("tests", role="oracle"))
    try:
        container.start()
        status = container.wait(timeout=timeout)["StatusCode"]
        out = container.logs(stdout=True, stderr=False).decode(errors="replace")
        err = container.logs(stdout=False, stderr=True).decode(errors="replace")
    finally:
        container.remove(force=True)
    return subprocess.CompletedProcess([tool, *args], status, out, err)


def tshark(args: Sequence[str], *files: Path) -> str:
    """tshark's standard output for `args` (files it reads are mounted); a failure shows its stderr."""
    proc = run("tshark", args, sorted({f.absolute().parent for f in files}))
    assert proc.returncode == 0, f"tshark {' '.join(args)}: {proc.stderr.strip()[-500:]}"
    return proc.stdout
