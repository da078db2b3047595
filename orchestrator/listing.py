"""What `list` shows: one entry per catalogue scenario, kept in a cache so `list` need not parse YAML.

Loading the catalogue (YAML, then the model's validation) is most of what `list`
would cost, and its answer changes only when a file changes. The cache holds the
entries with a fingerprint (name, size, mtime and CRC-32 of every file in the
catalogue folder, the topology and the package's own modules, which validate
it): any change, a new file or a removed one makes it miss, and the catalogue
is loaded and validated again, so an invalid scenario file is still refused. A
cache that cannot be read, parsed or written is ignored.
"""
from __future__ import annotations

import json
import os
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

from .paths import BUILTIN_DIR, COMPOSE_FILE, PACKAGE_DIR

if TYPE_CHECKING:
    from .model import Scenario

CACHE_FORMAT = 1


class Entry(TypedDict):
    """A scenario as `list --json` gives it."""

    id: str
    title: str
    claim: str
    hosts: list[str]
    article_holds: bool
    file: str


ENTRY_TYPES = {"id": str, "title": str, "claim": str, "hosts": list, "article_holds": bool, "file": str}


def entry(scenario: Scenario) -> Entry:
    return Entry(id=scenario.id, title=scenario.title, claim=scenario.claim, hosts=list(scenario.hosts),
                 article_holds=scenario.article_holds, file=scenario.source)


def cache_file() -> Path:
    """$XDG_CACHE_HOME/rstlab (default ~/.cache/rstlab), one file per checkout of the package."""
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rstlab"
    return root / f"catalogue-{zlib.crc32(str(PACKAGE_DIR).encode()):08x}.json"


def fingerprint(folder: Path = BUILTIN_DIR) -> list[list[object]]:
    """What the catalogue's entries depend on: every file they are read or validated from."""
    files = [*sorted(folder.iterdir()), COMPOSE_FILE, *sorted(PACKAGE_DIR.glob("*.py"))]
    out: list[list[object]] = [[CACHE_FORMAT]]
    for path in files:
        try:
            stat = path.stat()
            content = path.read_bytes() if path.is_file() else b""
        except OSError:
            content, stat = b"", None
        out.append([str(path), stat.st_size if stat else -1, stat.st_mtime_ns if stat else -1, zlib.crc32(content)])
    return out


def _valid(entries: object) -> list[Entry] | None:
    if not isinstance(entries, list):
        return None
    for e in entries:
        if not (isinstance(e, dict) and e.keys() == ENTRY_TYPES.keys()
                and all(isinstance(e[k], t) for k, t in ENTRY_TYPES.items())
                and all(isinstance(h, str) for h in e["hosts"])):
            return None
    return entries


def _cached(path: Path, key: list[list[object]]) -> list[Entry] | None:
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("key") != key:
        return None
    return _valid(doc.get("entries"))


def _store(path: Path, key: list[list[object]], entries: list[Entry]) -> None:
    """Written to a file of its own, then renamed over the cache: a reader never sees half a file."""
    partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text(json.dumps({"key": key, "entries": entries}))
        os.replace(partial, path)
    except OSError:
        try:
            partial.unlink(missing_ok=True)
        except OSError:
            pass


def catalogue_entries(cache: Path | None = None, folder: Path = BUILTIN_DIR) -> list[Entry]:
    """The catalogue's entries in file-name order: from the cache when nothing changed, else loaded (and cached).

    An invalid scenario file raises ScenarioFileError as loading the catalogue does. `folder`: another
    catalogue folder (tests).
    """
    cache = cache or cache_file()
    key = fingerprint(folder)
    found = _cached(cache, key)
    if found is not None:
        return found
    from . import catalog

    entries = [entry(s) for s in catalog.builtin_scenarios(catalog.load_topology(), folder)]
    if fingerprint(folder) == key:   # nothing changed while it loaded
        _store(cache, key, entries)
    return entries


HEADERS = ("id", "hosts", "article holds on Linux", "title")


def rows(entries: list[Entry]) -> list[tuple[str, str, str, str]]:
    """The table `list` prints: one row per scenario, in HEADERS' order."""
    return [(e["id"], ", ".join(e["hosts"]), "yes" if e["article_holds"] else "no", e["title"]) for e in entries]
