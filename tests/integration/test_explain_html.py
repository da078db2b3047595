"""`explain --html` in a real browser: headless Chromium draws every incident's ladder, and screenshots are kept.

The pages are made from captures nobody here made (../shared/pcaps/wild/: the
scan w03 and w06, whose seven resets have four causes) and from the catalogue's
fixtures explained together (one page, several captures, several causes).
Chromium is Debian's, installed here or in the tools container (tests/oracles.py);
the screenshots are kept in captures/explain-screenshots/ to look at.
"""
from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
from rich.console import Console

from orchestrator.cli import main
from orchestrator.explain import explain_file, incidents
from tests.conftest import ROOT, WILD
from tests.integration import test_html as lab_page  # the lab's browser, DOM reader and PNG reader

FIXTURES = ROOT / "tests" / "fixtures" / "explain"
KEPT = ROOT / "captures" / "explain-screenshots"
CAPTURES = {
    "scan": [WILD / "w03.pcapng"],
    "several-causes": [WILD / "w06.pcap"],
    "catalogue-fixtures": [FIXTURES / f"{name}_client.pcap" for name in
                           ("closed-port", "connect-timeout", "peer-restart", "data-after-close", "silent-drop")],
}


def write_page(files: list[Path], page: Path) -> int:
    """`explain --html page FILE…`; returns the number of incidents the page must draw."""
    status = main(["explain", "--html", str(page), *map(str, files)], console=Console(file=io.StringIO()),
                  err=Console(file=io.StringIO()))
    assert status == 0 and page.is_file()
    return sum(len(incidents(explain_file(str(f)).explanations)) for f in files)


@pytest.mark.parametrize("name", list(CAPTURES))
def test_every_incidents_ladder_is_drawn(name: str, tmp_path: Path) -> None:
    page = tmp_path / f"{name}.html"
    expected = write_page(CAPTURES[name], page)
    proc = lab_page.browse(page, tmp_path, "--dump-dom")
    assert proc.returncode == 0 and "<svg" in proc.stdout, proc.stderr[-2000:]
    dom = lab_page.Dom()
    dom.feed(proc.stdout)
    assert not dom.external, f"the page must be self-contained: {dom.external}"
    assert len(dom.svgs) == expected > 0, "one ladder per incident"
    names = [str(svg["attrs"]["data-scenario"]) for svg in dom.svgs]  # type: ignore[index]
    assert len(set(names)) == len(names), "each ladder has its own id"
    for svg in dom.svgs:
        arrows = int(svg["attrs"]["data-arrows"])  # type: ignore[index]
        assert arrows > 0 and svg["seg"] == arrows, f"{svg['attrs']}: one drawn group per arrow"
        assert svg["life"] == 2 and len(svg["participants"]) == 2, "the connection's two ends are lifelines"  # type: ignore[arg-type]
        assert int(svg["line"]) >= arrows + 2 and int(svg["text"]) >= arrows, "every arrow drawn and labelled"
        for seg in svg["segs"]:  # type: ignore[attr-defined]
            assert {seg["data-from"], seg["data-to"]} <= set(svg["participants"]), seg  # type: ignore[arg-type]
    assert sum(int(svg["rst"]) for svg in dom.svgs) > 0, "the resets are drawn as resets"


@pytest.mark.parametrize("name", ["scan", "several-causes"])
def test_screenshot_of_the_page(name: str, tmp_path: Path) -> None:
    """The page in headless Chromium: drawn (ink), the resets red, every ladder within the window; kept to look at."""
    from orchestrator.report.connection_ladder import connection_ladder
    from orchestrator.report.html import svg_ladder

    page = tmp_path / f"{name}.html"
    write_page(CAPTURES[name], page)
    shot = tmp_path / f"explain-{name}.png"        # where the browser may write (mounted, if it runs in a container)
    proc = lab_page.browse(page, tmp_path, "--window-size=1300,2600", f"--screenshot={shot}")
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    KEPT.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shot, KEPT / shot.name)
    width, height, rows = lab_page.png_pixels(shot)
    assert (width, height) == (1300, 2600)
    colours, ink, red = lab_page.pixel_counts(rows)
    assert len(colours) > 20 and ink > 5000, "the page is drawn, not blank"
    assert red > 50, "a reset is drawn in red"
    for f in CAPTURES[name]:
        result = explain_file(str(f))
        for k, inc in enumerate(incidents(result.explanations)):
            svg = svg_ladder(connection_ladder(inc.example, result.t0, f"i{k}"))
            assert int(svg.split('width="', 1)[1].split('"', 1)[0]) <= width - 80, "every ladder fits the page"
