"""Compiling a scenario's C and C++ sources in the builder image, cached by digest.

The builder image (images/builder: gcc, g++, libc6-dev) is made like the lab's
others and only the first time a scenario has sources. Each source is built
statically (it runs on any host image) in a container with no network and no
capabilities; the binary is kept under the cache folder by a digest of the
builder image, the compiler, the flags and the source, so a second run
compiles nothing. A compiler error is bad input: one line with the first
compiler message, exit 2, before any scenario starts.
"""
from __future__ import annotations

import hashlib
import io
import os
import re
import tarfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import docker
import docker.types

from ..errors import BadInput, LabRuntimeError
from ..model import Scenario
from ..programs import BuildSource, HostFile
from . import engine, images

Progress = Callable[[str], None]
ALWAYS = ("-static",)          # the hosts have no libstdc++, and a static binary runs on any of them
COMPILE_TIMEOUT = 120


def cache_dir() -> Path:
    """Where built binaries are kept: $RSTLAB_BUILD_CACHE, else ~/.cache/rstlab/builds."""
    chosen = os.environ.get("RSTLAB_BUILD_CACHE")
    if chosen:
        return Path(chosen)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rstlab" / "builds"


class CompileError(BadInput):
    """The compiler refused a scenario's source: exit 2."""


@dataclass(frozen=True)
class Built:
    """One source's binary and whether this run compiled it (False: from the cache)."""

    source: BuildSource
    binary: bytes
    compiled: bool


def compiler_argv(source: BuildSource) -> list[str]:
    compiler = "gcc" if source.language == "c" else "g++"
    return [compiler, *source.flags, *ALWAYS, "-o", f"/build/{source.output}", f"/build/src/{source.name}"]


def build_digest(image: str, source: BuildSource) -> str:
    h = hashlib.sha256()
    for part in (image, "\0".join(compiler_argv(source)), source.name):
        h.update(part.encode() + b"\0")
    h.update(source.content)
    return h.hexdigest()[:24]


def first_compiler_message(output: str, source: str) -> str:
    """The first `file:line:col: error: …` line (else the first line that says error), trimmed."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in lines:
        if re.search(r"\berror\b", line) and re.match(rf"(/build/src/)?{re.escape(source)}:\d+", line):
            return line.replace("/build/src/", "")
    for line in lines:
        if "error" in line:
            return line.replace("/build/src/", "")
    return lines[0] if lines else "the compiler failed without a message"


def _tar(name: str, content: bytes) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo(f"src/{name}")
        info.size, info.mode = len(content), 0o644
        tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def _untar_one(chunks: bytes) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(chunks)) as tar:
        member = next(m for m in tar.getmembers() if m.isfile())
        extracted = tar.extractfile(member)
        assert extracted is not None
        return extracted.read()


def compile_source(client: docker.DockerClient, image: str, source: BuildSource, run_id: str,
                   scenario: str) -> bytes:
    """One compiler run in a throwaway container (no network, no capabilities); the binary's bytes."""
    api = client.api
    host_config = api.create_host_config(network_mode="none", cap_drop=["ALL"], pids_limit=256, mem_limit="1g",
                                         log_config=docker.types.LogConfig(type="json-file"))
    try:
        cid = api.create_container(image, compiler_argv(source), working_dir="/build", host_config=host_config,
                                   labels=engine.labels(run_id, scenario, "builder"))["Id"]
    except engine.SDK_ERRORS as exc:
        raise LabRuntimeError(f"cannot create the builder for {source.name}: {engine.explanation(exc)}") from None
    try:
        api.put_archive(cid, "/build", _tar(source.name, source.content))
        api.start(cid)
        status = int(api.wait(cid, timeout=COMPILE_TIMEOUT)["StatusCode"])
        if status != 0:
            output = api.logs(cid, stdout=True, stderr=True).decode(errors="replace")
            raise CompileError(f"{source.name} does not compile: {first_compiler_message(output, source.name)}",
                               f"{compiler_argv(source)[0]}'s first message; nothing was started")
        stream, _ = api.get_archive(cid, f"/build/{source.output}")
        return _untar_one(b"".join(stream))
    except engine.SDK_ERRORS as exc:
        raise LabRuntimeError(f"building {source.name} failed: {engine.explanation(exc)}") from None
    finally:
        try:
            api.remove_container(cid, force=True)
        except engine.SDK_ERRORS:
            pass   # removed by label with the run's other objects


def build_sources(client: docker.DockerClient, scenarios: Sequence[Scenario], images_dir: Path, run_id: str,
                  progress: Progress, cache: Path | None = None) -> tuple[list[Scenario], list[Built]]:
    """Every scenario's sources built (or taken from the cache); scenarios get the binaries as files."""
    if not any(s.builds for s in scenarios):
        return list(scenarios), []
    image = images.ensure_image(client, images_dir / "builder", run_id, progress)
    cache = cache or cache_dir()
    done: list[Built] = []
    out: list[Scenario] = []
    for scenario in scenarios:
        binaries: list[HostFile] = []
        for source in scenario.builds:
            kept = cache / build_digest(image, source) / source.output
            compiled = not kept.is_file()
            if compiled:
                compiler = " ".join(compiler_argv(source)[:1] + list(source.flags))
                progress(f"compiling {source.name} for {scenario.id} ({compiler})")
                binary = compile_source(client, image, source, run_id, scenario.id)
                kept.parent.mkdir(parents=True, exist_ok=True)
                partial = kept.with_suffix(".partial")
                partial.write_bytes(binary)
                partial.replace(kept)
            binary = kept.read_bytes()
            done.append(Built(source, binary, compiled))
            binaries.append(HostFile(source.host, source.output, binary, 0o755))
        out.append(replace(scenario, files=scenario.files + tuple(binaries)) if binaries else scenario)
    return out, done
