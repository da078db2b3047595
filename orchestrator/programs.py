"""What a scenario brings into its hosts: files next to the scenario file, and C/C++ sources to build.

Pure data, validated as it is read; `read_file` reads a file next to the
scenario file (its content and permission bits). Errors are ValueErrors
naming the field, which the model turns into ScenarioFileError.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

FILES_DIR = "/tmp/files"           # an exec-allowed tmpfs on every host (compose.yaml)
BUILD_KEYS = frozenset({"source", "flags", "output"})
SOURCE_SUFFIXES = (".c", ".cc", ".cpp", ".cxx")


@dataclass(frozen=True)
class HostFile:
    """A file the scenario brings into a host (its own program, data): lands in /tmp/files/NAME."""

    host: str
    name: str
    content: bytes
    mode: int = 0o644              # the source file's permission bits: a binary stays executable

    @property
    def path(self) -> str:
        return f"{FILES_DIR}/{self.name}"


@dataclass(frozen=True)
class BuildSource:
    """A C or C++ source the lab compiles for a host; the binary lands in /tmp/files/OUTPUT."""

    host: str
    name: str
    content: bytes
    flags: tuple[str, ...] = ("-O2", "-Wall")
    output: str = ""

    @property
    def language(self) -> str:
        return "c" if self.name.endswith(".c") else "c++"

    @property
    def path(self) -> str:
        return f"{FILES_DIR}/{self.output}"


ReadFile = Callable[[str], tuple[bytes, int]]   # a file next to the scenario file: content, permission bits


def _read(where: str, name: str, read_file: ReadFile | None) -> tuple[bytes, int]:
    if "/" in name or name.startswith("."):
        raise ValueError(f"{where}: {name!r} must be a file next to the scenario file")
    if read_file is None:
        raise ValueError(f"{where}: files can only come with a scenario file")
    try:
        return read_file(name)
    except OSError as exc:
        raise ValueError(f"{where}: cannot read {name!r} ({exc.strerror or exc})") from None


def parse_builds(raw: Any, hosts: Sequence[str], read_file: ReadFile | None) -> list[BuildSource]:
    """`build: {HOST: [SOURCE or {source, flags, output}]}`: C/C++ sources compiled for a host."""
    out = []
    for host, items in _mapping("build", raw).items():
        if host not in hosts:
            raise ValueError(f"build.{host}: {host!r} is not one of the scenario's hosts")
        for i, item in enumerate(_list(f"build.{host}", items)):
            here = f"build.{host}[{i}]"
            spec = {"source": item} if isinstance(item, str) else dict(_mapping(here, item))
            unknown = sorted(set(spec) - BUILD_KEYS)
            if unknown:
                raise ValueError(f"{here}: unknown field {unknown[0]!r} (allowed: {', '.join(sorted(BUILD_KEYS))})")
            name = str(spec.get("source", ""))
            if not name.endswith(SOURCE_SUFFIXES):
                raise ValueError(f"{here}: {name!r} is not a C or C++ source ({', '.join(SOURCE_SUFFIXES)})")
            flags = tuple(str(f) for f in _list(f"{here}.flags", spec.get("flags", list(BuildSource.flags))))
            output = str(spec.get("output") or name.rsplit(".", 1)[0])
            if "/" in output or output.startswith("."):
                raise ValueError(f"{here}.output: {output!r} must be a plain file name")
            content, _ = _read(here, name, read_file)
            out.append(BuildSource(host, name, content, flags, output))
    return out


def parse_files(raw: Any, hosts: Sequence[str], read_file: ReadFile | None) -> list[HostFile]:
    """`files: {HOST: [NAME…]}`: files next to the scenario file, each keeping its mode."""
    out = []
    for host, names in _mapping("files", raw).items():
        if host not in hosts:
            raise ValueError(f"files.{host}: {host!r} is not one of the scenario's hosts")
        for name in _list(f"files.{host}", names):
            content, mode = _read(f"files.{host}", str(name), read_file)
            out.append(HostFile(host, str(name), content, mode))
    return out


def _mapping(where: str, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{where}: expected a mapping, got {type(value).__name__}")
    return value


def _list(where: str, value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError(f"{where}: expected a list, got {type(value).__name__}")
    return value
