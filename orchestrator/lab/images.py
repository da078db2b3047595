"""Building the lab's images, offline when no registry can be reached.

Images are tagged with a digest of their inputs, so they are rebuilt only when
an input changes. The base comes from `debian:bookworm-slim` where that image is
present or can be pulled; otherwise it is bootstrapped with debootstrap from
the Debian archive and imported (about 40 s). The host image is built on it
with no network either way.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors

from ..errors import ImageBuildError
from . import engine, provision

BASE_REPO = "rstlab/base"
HOST_REPO = "rstlab/host"
UPSTREAM = ("debian", "bookworm-slim")
SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
STRIP = ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man",
         "usr/share/locale", "usr/share/info")

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ImageSet:
    """The image tags one run uses."""

    base: str
    host: str


def digest(paths: Iterable[Path], extra: str = "") -> str:
    """A short digest of file names and contents (and `extra`), stable across machines."""
    h = hashlib.sha256(extra.encode())
    for path in sorted(paths):
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:12]


def _files(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.is_file()]


def _exists(client: docker.DockerClient, tag: str) -> bool:
    with engine.engine_call(f"cannot look for the image {tag}", ImageBuildError):
        try:
            client.images.get(tag)
            return True
        except docker.errors.ImageNotFound:
            return False


def ensure_images(client: docker.DockerClient, images_dir: Path, run_id: str,
                  progress: Progress, force: bool = False) -> ImageSet:
    """Make sure the base and host images for the current inputs exist; build what is missing."""
    base = f"{BASE_REPO}:{digest(_files(images_dir / 'base'))}"
    host = f"{HOST_REPO}:{digest(_files(images_dir / 'host'), extra=base)}"
    if force or not _exists(client, base):
        _build_base(client, images_dir / "base", base, run_id, progress)
    if force or not _exists(client, host):
        progress(f"building {host}")
        _build_dockerfile(client, images_dir / "host", host, run_id, progress, buildargs={"BASE": base})
    for tag in (base, host):
        with engine.engine_call(f"cannot tag {tag} as latest", ImageBuildError):
            client.images.get(tag).tag(tag.split(":")[0], "latest")
    return ImageSet(base=base, host=host)


def ensure_image(client: docker.DockerClient, folder: Path, run_id: str, progress: Progress,
                 base: str | None = None) -> str:
    """An extra image (folder: Dockerfile and packages.txt), built only when first asked for.

    Without `base` it is a Debian root of its own, made like the base (from
    debian:bookworm-slim, or debootstrap offline: the C builder). With `base`
    its Dockerfile builds on that image, with apt-get from the Debian archive
    (the tests' tools: debootstrap cannot configure Chromium's desktop
    dependencies). Tagged `rstlab/NAME:DIGEST` and `rstlab/NAME:latest`.
    """
    tag = f"rstlab/{folder.name}:{digest(_files(folder), extra=base or '')}"
    if not _exists(client, tag):
        if base is None:
            _build_base(client, folder, tag, run_id, progress)
        else:
            progress(f"building {tag} on {base}")
            _build_dockerfile(client, folder, tag, run_id, progress, buildargs={"BASE": base})
    with engine.engine_call(f"cannot tag {tag} as latest", ImageBuildError):
        client.images.get(tag).tag(f"rstlab/{folder.name}", "latest")
    return tag


def _build_base(client: docker.DockerClient, folder: Path, tag: str, run_id: str, progress: Progress) -> None:
    how = os.environ.get("RSTLAB_BASE", "auto")
    if how == "dockerfile" or (how == "auto" and _upstream_available(client, progress)):
        progress(f"building {tag} from {':'.join(UPSTREAM)}")
        _build_dockerfile(client, folder, tag, run_id, progress)
    else:
        _bootstrap_base(client, folder, tag, run_id, progress)


def _upstream_available(client: docker.DockerClient, progress: Progress) -> bool:
    name = ":".join(UPSTREAM)
    if _exists(client, name):
        return True
    try:
        client.images.pull(*UPSTREAM)
        return True
    except engine.SDK_ERRORS as exc:
        progress(f"cannot pull {name} ({engine.explanation(exc)}); bootstrapping it offline")
        return False


def _build_dockerfile(client: docker.DockerClient, folder: Path, tag: str, run_id: str,
                      progress: Progress, buildargs: dict[str, str] | None = None) -> None:
    try:
        for chunk in client.api.build(path=str(folder), tag=tag, rm=True, forcerm=True, decode=True,
                                      buildargs=buildargs, labels=engine.labels(run_id)):
            if "error" in chunk:
                raise ImageBuildError(f"building {tag} failed: {chunk['error'].strip()}",
                                      f"see the Dockerfile in {folder}")
            line = str(chunk.get("stream", "")).strip()
            if line:
                progress(line)
    except engine.SDK_ERRORS as exc:
        raise ImageBuildError(f"building {tag} failed: {engine.explanation(exc)}") from None


def _bootstrap_base(client: docker.DockerClient, folder: Path, tag: str, run_id: str, progress: Progress) -> None:
    """debootstrap a bookworm root with packages.txt, strip it, import it as an image."""
    if os.geteuid() != 0:
        raise ImageBuildError(f"no registry reachable and bootstrapping {tag} needs root",
                              "run `python -m orchestrator build` as root once, or make "
                              "debian:bookworm-slim available to the engine")
    debootstrap = provision.ensure_tool(provision.DEBOOTSTRAP, progress)
    packages = [p.strip() for p in (folder / "packages.txt").read_text().split() if p.strip()]
    mirror = os.environ.get("RSTLAB_DEBIAN_MIRROR", DEFAULT_MIRROR)
    progress(f"bootstrapping {tag}: debootstrap {SUITE} with {', '.join(packages)}")
    with tempfile.TemporaryDirectory(prefix="rstlab-base-") as tmp:
        root = Path(tmp) / "root"
        cmd = [debootstrap, "--variant=minbase", f"--include={','.join(packages)}", SUITE, str(root), mirror]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        tail: list[str] = []
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.strip()
            tail = (tail + [line])[-5:]
            if line.startswith(("I: Retrieving", "I: Installing", "I: Configuring", "I: Base")):
                progress(line[3:])
        if proc.wait() != 0:
            raise ImageBuildError(f"debootstrap failed: {' | '.join(tail)}",
                                  f"check that {mirror} is reachable")
        for rel in STRIP:
            target = root / rel
            if target.is_dir():
                shutil.rmtree(target)
                target.mkdir()
        archive = Path(tmp) / "root.tar"
        subprocess.run(["tar", "-C", str(root), "-cf", str(archive), "."], check=True)
        progress(f"importing {tag}")
        repo, _, version = tag.partition(":")
        changes = ["ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                   f"LABEL {engine.RUN}={run_id}", 'CMD ["/bin/bash"]']
        try:
            client.api.import_image_from_file(str(archive), repository=repo, tag=version, changes=changes)
        except engine.SDK_ERRORS as exc:
            raise ImageBuildError(f"importing {tag} failed: {engine.explanation(exc)}") from None
    if not _exists(client, tag):
        raise ImageBuildError(f"importing {tag} produced no image")
