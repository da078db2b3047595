"""Integration tests: the real Docker engine, real images, real captures.

Where CI is set they never skip: no engine is a failure there. After the
session no object labelled rstlab.run may be left on the engine.
"""
from __future__ import annotations

import io
import os
import secrets
from pathlib import Path
from typing import Iterator

import docker
import pytest
from rich.console import Console

from orchestrator import catalog
from orchestrator.errors import EngineUnavailable
from orchestrator.lab import engine, images

# Every object this session makes, in-process or in a subprocess, carries rstlab.session=SESSION:
# the leak check below finds exactly ours on an engine other runs share.
SESSION = os.environ.setdefault(engine.SESSION_ENV, f"tests-{secrets.token_hex(4)}")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    try:
        client = engine.connect()
    except EngineUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set, so integration tests must run: {exc.line()}")
        pytest.skip(f"integration tests need Docker: {exc.line()}")
    yield client
    leaked = [o.name for o in engine.lab_objects(client, f"{engine.SESSION}={SESSION}")]
    assert not leaked, f"the tests left lab objects on the engine: {sorted(leaked)}"


@pytest.fixture(scope="session")
def image_set(docker_client: docker.DockerClient) -> images.ImageSet:
    """The lab's images; a cold build (and what it installs, e.g. debootstrap) shows its stages on the terminal."""
    from tests.oracles import build_stages

    return images.ensure_images(docker_client, catalog.IMAGES_DIR, "tests", build_stages)


@pytest.fixture(scope="session")
def catalogue_run(image_set: images.ImageSet, tmp_path_factory: pytest.TempPathFactory) -> tuple[int, Path, str]:
    """`python -m orchestrator all` once for the session: (exit status, output folder, console text)."""
    from orchestrator.cli import main

    out = tmp_path_factory.mktemp("all")
    buffer = io.StringIO()
    status = main(["all", "--out", str(out)], console=Console(file=buffer, width=160))
    return status, out, buffer.getvalue()


@pytest.fixture()
def kernel_witness() -> None:
    """The kernel witness can be used here; else skipped (a failure where CI is set)."""
    from orchestrator.lab import witness as tracefs

    why = tracefs.unavailable({"KernelVersion": os.uname().release})
    if why is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set, so the witness must work: {why}")
        pytest.skip(why)
