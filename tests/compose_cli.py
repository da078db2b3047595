"""The Compose on this machine, for the tests of compose.yaml: the plugin (`docker compose`) or Debian's docker-compose.

Both read the same file (see its header); the tests run whichever is installed,
preferring the plugin, and say which. `.ci/run` installs Debian's
`docker-compose` where neither is present.
"""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest


def compose_command() -> list[str] | None:
    """`["docker", "compose"]` when the plugin answers, else `["docker-compose"]` when installed, else None."""
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], check=False, capture_output=True, text=True, timeout=30)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def require_compose() -> list[str]:
    """The Compose command; where CI is set a missing one fails (CI installs it), elsewhere the test skips."""
    command = compose_command()
    if command is None:
        message = "no Compose installed (apt-get install docker-compose; .ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return command


def compose_version(command: list[str]) -> str:
    out = subprocess.run([*command, "version", "--short"], check=False, capture_output=True, text=True, timeout=30)
    return (out.stdout.strip() or out.stderr.strip()).splitlines()[0] if out.returncode == 0 else "?"
