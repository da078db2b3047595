"""Which of the package's modules run compiled, and the one rule that keeps a stale copy from running.

`setup.py` compiles the explain engine with Cython where it can (`pip install .` or `-e .`), leaving
each compiled module beside its .py, where Python's import prefers it, and records the SHA-256 of
each source it compiled in `compiled.json` beside this file. A checkout edited or updated since would
run the old code: `SourceFirst` loads a module from its .py wherever the .py is not the source its
compiled copy was built from, and everywhere when RSTLAB_PURE is set (to compare the two, or to
profile the Python). `orchestrator/__init__.py` installs it before any other module of the package
is imported.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from importlib.machinery import EXTENSION_SUFFIXES, ModuleSpec
from importlib.util import spec_from_file_location
from types import ModuleType

__all__ = ["PURE_VARIABLE", "RECORD", "SourceFirst", "compiled_modules", "install", "source_digest", "source_of"]

PURE_VARIABLE = "RSTLAB_PURE"
PACKAGE = __name__.rpartition(".")[0]
RECORD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "compiled.json")   # module -> its source's digest


def source_digest(path: str) -> str:
    """The SHA-256 of a source file, as the build records it (hashlib and json are imported when first
    needed: a command that imports no compiled module does not pay for them)."""
    import hashlib

    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class SourceFirst:
    """An import finder (ahead of the usual ones) for this package's modules that have a compiled copy: gives
    the .py's spec where that copy must not run (built from another source, or `pure`), and leaves every other
    module to the usual finders. `built`: module name -> digest of the source compiled (by default read from
    `RECORD` when first needed)."""

    def __init__(self, pure: bool, built: Mapping[str, str] | None = None) -> None:
        self.pure = pure
        self._built = built

    @property
    def built(self) -> Mapping[str, str]:
        if self._built is None:
            import json

            try:
                with open(RECORD, encoding="utf-8") as f:
                    self._built = json.load(f)
            except (OSError, ValueError):
                self._built = {}      # nothing compiled, or a record unreadable: no compiled copy is trusted
        assert self._built is not None
        return self._built

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None) -> ModuleSpec | None:
        if not fullname.startswith(PACKAGE + ".") or not path:
            return None
        leaf = fullname.rpartition(".")[2]
        for folder in path:
            source = os.path.join(folder, leaf + ".py")
            if not os.path.exists(source):
                continue
            if not any(os.path.exists(os.path.join(folder, leaf + suffix)) for suffix in EXTENSION_SUFFIXES):
                return None
            if self.pure or self.built.get(fullname) != source_digest(source):
                return spec_from_file_location(fullname, source)
            return None
        return None


def install() -> None:
    """Put `SourceFirst` ahead of the usual finders (once)."""
    if not any(isinstance(f, SourceFirst) for f in sys.meta_path):
        sys.meta_path.insert(0, SourceFirst(bool(os.environ.get(PURE_VARIABLE))))


def source_of(module: ModuleType) -> str:
    """The .py a module of the package was compiled from, or loaded from (`inspect.getsource` finds no
    source for a compiled one)."""
    folder, leaf = os.path.split(module.__file__ or "")
    return os.path.join(folder, leaf.partition(".")[0] + ".py")


def compiled_modules() -> list[str]:
    """The package's modules imported so far that run compiled (not from a .py)."""
    return sorted(name for name, m in sys.modules.items()
                  if name.startswith(PACKAGE + ".") and not (getattr(m, "__file__", None) or ".py").endswith(".py"))
