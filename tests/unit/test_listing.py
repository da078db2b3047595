"""`list` from its cache: the same entries as loading the catalogue, any change to a file seen, a bad cache ignored."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator import catalog, listing
from orchestrator.errors import ScenarioFileError
from orchestrator.report.plain import text_table
from tests.conftest import ROOT


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A copy of the catalogue that a test may change."""
    copy = tmp_path / "scenarios"
    shutil.copytree(catalog.BUILTIN_DIR, copy)
    return copy


def loaded(folder: Path) -> list[listing.Entry]:
    """The entries as loading and validating every file gives them (no cache)."""
    return [listing.entry(s) for s in catalog.builtin_scenarios(catalog.load_topology(), folder)]


def refuse_to_load(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object) -> object:
        raise AssertionError("the catalogue was loaded although the cache holds it")
    monkeypatch.setattr(catalog, "builtin_scenarios", fail)


def test_the_cache_gives_what_loading_gives_and_spares_the_load(folder: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache" / "catalogue.json"
    first = listing.catalogue_entries(cache, folder)
    assert first == loaded(folder) and len(first) == len(list(folder.glob("*.yaml")))
    assert cache.exists()
    refuse_to_load(monkeypatch)
    assert listing.catalogue_entries(cache, folder) == first


@pytest.mark.parametrize("change", ["edit", "same-size-edit", "add", "remove", "beside"])
def test_any_change_to_a_file_is_seen(folder: Path, tmp_path: Path, change: str) -> None:
    cache = tmp_path / "catalogue.json"
    listing.catalogue_entries(cache, folder)
    closed = folder / "closed-port.yaml"
    text = closed.read_text()
    stat = closed.stat()
    if change == "edit":
        closed.write_text(text.replace("title: ", "title: Edited - ", 1))
    elif change == "same-size-edit":   # same size, same mtime: only the content tells
        closed.write_text(text.replace("A SYN", "B SYN", 1))
        os.utime(closed, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    elif change == "add":
        shutil.copy(closed, folder / "closed-port-2.yaml")
        (folder / "closed-port-2.yaml").write_text(text.replace("id: closed-port", "id: closed-port-2"))
    elif change == "remove":
        closed.unlink()
    else:   # a file a scenario brings, which validation reads
        (folder / "keepalive-pool-race.client.py").unlink()
        with pytest.raises(ScenarioFileError, match=r"keepalive-pool-race\.client\.py"):
            listing.catalogue_entries(cache, folder)
        return
    assert listing.catalogue_entries(cache, folder) == loaded(folder)


def test_an_invalid_scenario_file_is_refused_though_the_cache_held_it(folder: Path, tmp_path: Path) -> None:
    cache = tmp_path / "catalogue.json"
    listing.catalogue_entries(cache, folder)
    (folder / "closed-port.yaml").write_text("id: closed-port\ntitle: [oops\n")
    with pytest.raises(ScenarioFileError, match="not valid YAML"):
        listing.catalogue_entries(cache, folder)


@pytest.mark.parametrize("content", [
    b"", b"{not json", b"\xff\xfe", b"[]", b'{"key": [], "entries": []}',
    "truncated", "wrong types", "extra field",
])
def test_a_corrupt_cache_is_ignored_and_replaced(folder: Path, tmp_path: Path, content: bytes | str) -> None:
    cache = tmp_path / "catalogue.json"
    listing.catalogue_entries(cache, folder)
    good = cache.read_bytes()
    doc = json.loads(good)
    if content == "truncated":
        content = good[: len(good) // 2]
    elif content == "wrong types":
        doc["entries"][0]["hosts"] = "client"
        content = json.dumps(doc).encode()
    elif content == "extra field":
        doc["entries"][0]["extra"] = 1
        content = json.dumps(doc).encode()
    assert isinstance(content, bytes)
    cache.write_bytes(content)
    assert listing.catalogue_entries(cache, folder) == loaded(folder)
    assert json.loads(cache.read_bytes()) == json.loads(good)


def test_a_cache_that_cannot_be_written_is_no_error(folder: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert listing.catalogue_entries(blocker / "sub" / "catalogue.json", folder) == loaded(folder)
    assert list(tmp_path.glob("**/*.tmp")) == []


def test_plain_table_pads_every_column_but_the_last() -> None:
    text = text_table("T", ("id", "hosts", "title"), [("a", "client, server", "one"), ("long-id", "x", "two")])
    assert text.splitlines() == ["T", "id       hosts           title", "a        client, server  one",
                                 "long-id  x               two"]


def plain_env() -> dict[str, str]:
    """This environment, with nothing that makes rich take a pipe for a terminal."""
    return {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")}


def list_in_subprocess(cache_home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "orchestrator", "list", *args], cwd=ROOT, capture_output=True,
                          text=True, env={**plain_env(), "XDG_CACHE_HOME": str(cache_home)}, timeout=60, check=True)


def test_list_not_on_a_terminal_is_one_plain_line_per_scenario(tmp_path: Path) -> None:
    out = list_in_subprocess(tmp_path).stdout.splitlines()
    ids = sorted(p.stem for p in catalog.BUILTIN_DIR.glob("*.yaml"))
    assert out[1].split()[:2] == ["id", "hosts"]
    assert [line.split()[0] for line in out[2:]] == ids
    assert not any(c in "".join(out) for c in "┃│━\x1b")


def test_list_json_is_the_catalogue_cached_or_not(tmp_path: Path) -> None:
    expected = [{"id": s.id, "title": s.title, "claim": s.claim, "hosts": list(s.hosts),
                 "article_holds": s.article_holds, "file": s.source}
                for s in catalog.builtin_scenarios(catalog.load_topology())]
    cold = list_in_subprocess(tmp_path, "--json").stdout
    warm = list_in_subprocess(tmp_path, "--json").stdout
    assert cold == warm and json.loads(warm) == expected


def test_warm_list_loads_neither_yaml_nor_rich_nor_the_model(tmp_path: Path) -> None:
    """What makes `list` fast: with the cache warm nothing heavy is imported (stdout is a pipe)."""
    list_in_subprocess(tmp_path)
    probe = ("import sys\nfrom orchestrator.cli import main\nstatus = main(['list'])\n"
             "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('yaml', 'rich', 'docker')\n"
             "               or m in ('orchestrator.model', 'orchestrator.catalog'))\n"
             "print(status, heavy, file=sys.stderr)\n")
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**plain_env(), "XDG_CACHE_HOME": str(tmp_path)})
    assert done.stderr.splitlines()[-1] == "0 []", done.stderr
