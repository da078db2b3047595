"""Finding and loading scenarios and the topology from files (YAML)."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import yaml

from .errors import ScenarioFileError, UnknownScenario
from .model import ID_PATTERN, Scenario, scenario_from_mapping
from .paths import BUILTIN_DIR, COMPOSE_FILE, IMAGES_DIR, PACKAGE_DIR, PROJECT_DIR
from .topology import Topology, topology_from_compose

__all__ = ["BUILTIN_DIR", "COMPOSE_FILE", "IMAGES_DIR", "PACKAGE_DIR", "PROJECT_DIR", "builtin_scenarios",
           "load_scenario_file", "load_topology", "resolve"]


# libyaml's safe loader where PyYAML was built with it: the same documents, about ten times faster
# (parsing the catalogue was most of `list`'s time)
SAFE_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _read_yaml(path: Path) -> object:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        reason = f"{exc.__class__.__name__}: {getattr(exc, 'strerror', exc)}"
        raise ScenarioFileError(f"{path}: cannot read ({reason})") from None
    if not text.strip():
        raise ScenarioFileError(f"{path}: the file is empty")
    try:
        return yaml.load(text, Loader=SAFE_LOADER)
    except yaml.YAMLError:
        pass
    try:   # a bad file: the pure-Python loader's message names the problem better
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ScenarioFileError(f"{path}: not valid YAML{where}: {problem}") from None


def load_topology(path: Path = COMPOSE_FILE) -> Topology:
    return topology_from_compose(_read_yaml(path), str(path))


def _beside(path: Path) -> Callable[[str], tuple[bytes, int]]:
    """Reads a file next to a scenario file: its content and permission bits (a binary stays executable)."""
    def read(name: str) -> tuple[bytes, int]:
        target = path.parent / name
        return target.read_bytes(), target.stat().st_mode & 0o777
    return read


def load_scenario_file(path: Path, topology: Topology) -> Scenario:
    return scenario_from_mapping(_read_yaml(path), str(path), list(topology.hosts), read_file=_beside(path))


def builtin_scenarios(topology: Topology, folder: Path = BUILTIN_DIR) -> list[Scenario]:
    """The catalogue shipped with the package (or the scenario files in `folder`), in file-name order."""
    return [load_scenario_file(p, topology) for p in sorted(folder.glob("*.yaml"))]


def _builtin(name: str, topology: Topology) -> Scenario | None:
    """The catalogue scenario `name` from its own file alone (an id is its file's name), else None."""
    path = BUILTIN_DIR / f"{name}.yaml"
    if not ID_PATTERN.fullmatch(name) or not path.is_file():
        return None
    scenario = load_scenario_file(path, topology)
    return scenario if scenario.id == name else None


def resolve(names: list[str], topology: Topology) -> list[Scenario]:
    """Scenario ids from the catalogue, or paths to scenario files, in the order given.

    Only the files named are read (`run closed-port` need not parse the whole catalogue); all of it
    only for an id that is not its file's name, or to list the known ids when one is unknown.
    """
    chosen = []
    for name in names:
        found = _builtin(name, topology)
        if found is None and (name.endswith((".yaml", ".yml")) or Path(name).exists()):
            found = load_scenario_file(Path(name), topology)
        if found is None:
            catalogue = {s.id: s for s in builtin_scenarios(topology)}
            if name not in catalogue:
                raise UnknownScenario(f"unknown scenario {name!r}",
                                      f"known: {', '.join(catalogue)}; or give a scenario file path")
            found = catalogue[name]
        chosen.append(found)
    return chosen
