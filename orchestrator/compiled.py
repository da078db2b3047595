"""Which of the package's modules run compiled, and the one rule that keeps a stale copy from running.

`setup.py` compiles the explain engine with Cython where it can (`pip install -e .`), leaving each
compiled module beside its .py, where Python's import prefers it. A checkout edited or updated since
would then run the old code: `SourceFirst` loads a module from its .py wherever that is newer than
its compiled copy, and everywhere when RSTLAB_PURE is set (to compare the two, or to profile the
Python). `orchestrator/__init__.py` installs it before any other module of the package is imported.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from importlib.abc import MetaPathFinder
from importlib.machinery import EXTENSION_SUFFIXES, ModuleSpec
from importlib.util import spec_from_file_location
from types import ModuleType

__all__ = ["PURE_VARIABLE", "SourceFirst", "compiled_modules", "install", "source_of"]

PURE_VARIABLE = "RSTLAB_PURE"
PACKAGE = __name__.rpartition(".")[0]


class SourceFirst(MetaPathFinder):
    """Finds this package's modules that have a compiled copy; gives the .py's spec where that copy must not
    run (older than the .py, or `pure`), and leaves every other module to the usual finders."""

    def __init__(self, pure: bool) -> None:
        self.pure = pure

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None) -> ModuleSpec | None:
        if not fullname.startswith(PACKAGE + ".") or not path:
            return None
        leaf = fullname.rpartition(".")[2]
        for folder in path:
            source = os.path.join(folder, leaf + ".py")
            try:
                source_time = os.stat(source).st_mtime_ns
            except OSError:
                continue
            for suffix in EXTENSION_SUFFIXES:
                try:
                    built_time = os.stat(os.path.join(folder, leaf + suffix)).st_mtime_ns
                except OSError:
                    continue
                if self.pure or source_time > built_time:
                    return spec_from_file_location(fullname, source)
                return None
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
