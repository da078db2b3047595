"""The package's build, beside pyproject.toml: the explain engine compiled with Cython.

The modules that read a capture and explain it (`COMPILED`) run every packet and every verdict
through the interpreter; compiled as they are, without a line changed, they take about a third less
time. They stay plain Python: a compiled module is optional, and where there is no C compiler (or no
Cython) the package installs and runs the same, only slower. The build records the digest of each
source it compiled (`orchestrator/compiled.json`); `orchestrator/compiled.py` loads a module from
its .py where the .py is not that source (an edited or updated checkout), or where RSTLAB_PURE is set.
"""
from __future__ import annotations

import hashlib
import json
import os
from glob import glob

from setuptools import setup
from setuptools.command.build_ext import build_ext

COMPILED = ["orchestrator/capture.py", "orchestrator/connections.py", "orchestrator/encap.py",
            "orchestrator/pcapfile.py", "orchestrator/explain/*.py", "orchestrator/explain/causes/*.py"]


def _sources() -> list[str]:
    return sorted(f for pattern in COMPILED for f in glob(pattern) if not f.endswith("__init__.py"))


def _extensions() -> list[object]:
    if os.environ.get("RSTLAB_PURE"):
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        return []
    # annotation_typing off: a compiled module behaves as its .py does (a `bytes` annotation would refuse
    # a bytearray, a `dict` one a defaultdict)
    extensions = cythonize(_sources(), compiler_directives={"language_level": 3, "annotation_typing": False},
                           quiet=True, build_dir="build/cython", nthreads=os.cpu_count() or 1)
    for ext in extensions:
        ext.optional = True       # no C compiler: the module stays plain Python
        ext.extra_compile_args = ["-O1"]    # as fast as -O3 here (the time goes in the calls), in half the build
    return list(extensions)


class RecordingBuildExt(build_ext):
    """build_ext that records, beside the package, the digest of each source it compiled (a module it could not
    compile is not recorded, and runs from its .py)."""

    def run(self) -> None:
        super().run()
        built: dict[str, str] = {}
        for ext in self.extensions:
            if os.path.exists(self.get_ext_fullpath(ext.name)):
                with open(ext.name.replace(".", "/") + ".py", "rb") as f:
                    built[ext.name] = hashlib.sha256(f.read()).hexdigest()
        record = os.path.join(os.path.dirname(self.get_ext_fullpath("orchestrator.compiled")), "compiled.json")
        os.makedirs(os.path.dirname(record), exist_ok=True)
        with open(record, "w", encoding="utf-8") as f:
            json.dump(built, f, indent=0, sort_keys=True)


setup(ext_modules=_extensions(), cmdclass={"build_ext": RecordingBuildExt},
      options={"build_ext": {"parallel": os.cpu_count() or 1}})
