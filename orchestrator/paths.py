"""Where the project's files are: the package, the catalogue, the topology, the Dockerfiles.

Its own module, with nothing to import, so `list` can find the catalogue without loading the YAML loader.
"""
from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_DIR = PACKAGE_DIR.parent
BUILTIN_DIR = PACKAGE_DIR / "scenarios"
COMPOSE_FILE = PROJECT_DIR / "compose.yaml"
IMAGES_DIR = Path(os.environ.get("RSTLAB_IMAGES", PROJECT_DIR / "images"))   # the Dockerfiles (override for tests)
